using System.Globalization;
using System.Text.Json;
using Curvature.Engine;
using Curvature.Lab;
using Curvature.Models;
using Curvature.Models.Data;

namespace Curvature.Tests.Lab;

/// <summary>The train and sample verbs on synthetic images and a small text: files, resume, sampling, bad input.</summary>
[Collection(ThreadSettings.Name)]
public class TrainCliTests
{
    private static string TinyText()
    {
        var path = Path.Combine(Scratch.NewDirectory(), "tiny.txt");
        File.WriteAllText(path, string.Concat(Enumerable.Repeat("To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n", 40)));
        return path;
    }

    private static readonly string[] TinyGpt = ["--model", "gpt", "--layers", "1", "--width", "16", "--heads", "2", "--context", "16", "--batch", "4"];

    [Fact]
    public void Mlp_training_writes_logs_summary_weights_checkpoint_and_plot()
    {
        var data = LabFiles.FakeFashionMnist(train: 64, test: 16);
        var dir = Path.Combine(Scratch.NewDirectory(), "mlp");
        var (code, output, err) = LabCli.Run("train", "--model", "mlp", "--data", data, "--out", dir, "--epochs", "3", "--batch", "16", "--width", "32",
            "--lr", "0.05", "--eval-every", "4");
        Assert.True(code == 0, err + output);
        var lines = File.ReadAllLines(Path.Combine(dir, "steps.csv"));
        Assert.Equal("step,loss,lr,momentum,weight_decay,eval_train_loss,eval_heldout_loss,eval_heldout_accuracy,seconds", lines[0]);
        Assert.Equal(1 + 3 * 4, lines.Length); // 64 images / 16 per batch = 4 steps per epoch
        Assert.Equal(3, lines.Skip(1).Count(l => l.Split(',')[6].Length > 0));
        double First(int i) => double.Parse(lines[i].Split(',')[1], CultureInfo.InvariantCulture);
        Assert.True(First(12) < First(1), $"the loss did not fall: {First(1)} → {First(12)}");
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "summary.json")));
        var final = doc.RootElement.GetProperty("final");
        foreach (var key in new[] { "train_loss", "train_accuracy", "test_loss", "test_accuracy" }) Assert.True(final.TryGetProperty(key, out _), key);
        Assert.Equal(12, doc.RootElement.GetProperty("steps").GetInt32());
        var (model, file) = ModelFiles.Load("mlp", Path.Combine(dir, "model.safetensors"), null);
        Assert.Equal("mlp", file.Metadata["model"]);
        Assert.Equal(784 * 32 + 32 + 32 * 32 + 32 + 32 * 10 + 10, model.ParameterCount());
        Assert.True(File.Exists(Path.Combine(dir, "checkpoint.safetensors")));
        Assert.True(File.Exists(Path.Combine(dir, "loss.png")));
    }

    [Fact]
    public void A_resumed_run_matches_an_uninterrupted_one()
    {
        var data = LabFiles.FakeFashionMnist(train: 64, test: 16);
        string[] Args(string dir, int steps, params string[] extra) =>
            ["train", "--model", "mlp", "--data", data, "--out", dir, "--steps", steps.ToString(CultureInfo.InvariantCulture), "--batch", "24", "--width", "16",
             "--schedule", "constant", "--warmup", "3", "--augment", "--checkpoint-every", "4", "--eval-every", "3", .. extra];
        var whole = Path.Combine(Scratch.NewDirectory(), "whole");
        var parts = Path.Combine(Scratch.NewDirectory(), "parts");
        Assert.Equal(0, LabCli.Run(Args(whole, 9)).Code);
        Assert.Equal(0, LabCli.Run(Args(parts, 5)).Code);
        var (code, output, err) = LabCli.Run(Args(parts, 9, "--resume"));
        Assert.True(code == 0, err + output);
        Assert.Contains("resuming at 5", output);
        // Step, loss and η agree bit for bit (the shorter first run also evaluated at its own last step, so the
        // evaluation cells of that one row differ by design).
        string[] Cells(string dir) => File.ReadAllLines(Path.Combine(dir, "steps.csv")).Select(l => string.Join(',', l.Split(',')[..3])).ToArray();
        Assert.Equal(Cells(whole), Cells(parts));
        var a = Safetensors.Read(Path.Combine(whole, "model.safetensors")).Tensors;
        var b = Safetensors.Read(Path.Combine(parts, "model.safetensors")).Tensors;
        Assert.Equal(a.Select(t => t.Tensor.ToArray<float>()), b.Select(t => t.Tensor.ToArray<float>()));
    }

    [Fact]
    public void Resnet_training_with_augmentation_saves_weights_that_load_by_shape()
    {
        var data = LabFiles.FakeFashionMnist(train: 32, test: 16);
        var dir = Path.Combine(Scratch.NewDirectory(), "resnet");
        var (code, output, err) = LabCli.Run("train", "--model", "resnet20", "--data", data, "--out", dir, "--steps", "2", "--batch", "16", "--augment");
        Assert.True(code == 0, err + output);
        var (model, _) = ModelFiles.Load("resnet20", Path.Combine(dir, "model.safetensors"), null);
        Assert.Equal(272_186, model.ParameterCount());
        // Two training steps moved the running statistics away from their initial 0 and 1.
        var state = model.StateDict().ToDictionary(t => t.Name, t => t.Value);
        Assert.Equal(2L, state["bn1.num_batches_tracked"].ToArray<long>()[0]);
        Assert.NotEqual(0f, state["layer3.2.bn2.running_mean"].ToArray<float>().Select(Math.Abs).Max());
    }

    [Fact]
    public void Gpt_training_reports_bits_per_character_and_sampling_is_seeded_and_in_vocabulary()
    {
        var text = TinyText();
        var dir = Path.Combine(Scratch.NewDirectory(), "gpt");
        var (code, output, err) = LabCli.Run(["train", .. TinyGpt, "--text", text, "--out", dir, "--steps", "6", "--eval-every", "3", "--eval-batches", "2",
            "--optimizer", "adamw", "--lr", "0.01", "--dropout", "0.1"]);
        Assert.True(code == 0, err + output);
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "summary.json")));
        var final = doc.RootElement.GetProperty("final");
        Assert.Equal(final.GetProperty("val_loss").GetDouble() / Math.Log(2), final.GetProperty("val_bits_per_char").GetDouble(), 1e-12);
        var weights = Path.Combine(dir, "model.safetensors");
        var meta = Safetensors.Read(weights).Metadata;
        Assert.Equal("gpt", meta["model"]);
        Assert.Equal("2", meta["n_head"]);
        Assert.DoesNotContain(Safetensors.Read(weights).Tensors, t => t.Name == "lm_head.weight");

        string[] sample = ["sample", "--weights", weights, "--prompt", "To be", "--tokens", "40", "--seed", "5"];
        var first = LabCli.Run(sample);
        Assert.True(first.Code == 0, first.Err);
        var line = first.Out.Split('\n').SkipWhile(l => !l.StartsWith("To be", StringComparison.Ordinal)).First();
        var vocabulary = CharCorpus.Load(text).Vocabulary;
        Assert.True(first.Out.Length > 40);
        Assert.All(first.Out[first.Out.IndexOf("To be", StringComparison.Ordinal)..].TrimEnd('\n'), c => Assert.Contains(c, vocabulary));
        Assert.Equal(first.Out, LabCli.Run(sample).Out);
        Assert.StartsWith("To be", line);
    }

    [Fact]
    public void Sampling_names_every_character_outside_the_vocabulary()
    {
        var text = TinyText();
        var dir = Path.Combine(Scratch.NewDirectory(), "gpt");
        Assert.Equal(0, LabCli.Run(["train", .. TinyGpt, "--text", text, "--out", dir, "--steps", "1"]).Code);
        var (code, _, err) = LabCli.Run("sample", "--weights", Path.Combine(dir, "model.safetensors"), "--prompt", "Zebra € to be", "--tokens", "3");
        Assert.Equal(1, code);
        Assert.Contains("'Z' (U+005A)", err);
        Assert.Contains("'€' (U+20AC)", err);
        Assert.Contains("outside the model's vocabulary", err);
        Assert.DoesNotContain("   at ", err); // one message, no stack trace
    }

    [Theory]
    [InlineData(new[] { "--steps", "3", "--epochs", "1" }, "exactly one of --steps and --epochs")]
    [InlineData(new[] { "--model", "gpt", "--epochs", "1" }, "--epochs is for mlp and resnet20")]
    [InlineData(new[] { "--steps", "3", "--dropout", "1.5" }, "--dropout: 1.5 is out of range; expected a finite number at least 0 and below 1")]
    [InlineData(new[] { "--steps", "3", "--model", "gpt", "--width", "30", "--heads", "4" }, "--width 30 is not divisible by --heads 4")]
    public void Bad_usage_is_refused_before_any_work(string[] args, string message)
    {
        var dir = Path.Combine(Scratch.NewDirectory(), "bad");
        var (code, _, err) = LabCli.Run(["train", "--out", dir, .. args]);
        Assert.Equal(Cli.UsageError, code);
        Assert.Contains(message, err);
        Assert.False(Directory.Exists(dir));
    }

    [Fact]
    public void A_missing_corpus_is_one_clear_error()
    {
        var outDir = Path.Combine(Scratch.NewDirectory(), "never");
        var (code, _, err) = LabCli.Run(["train", .. TinyGpt, "--text", "/nonexistent/shakespeare.txt", "--steps", "2", "--out", outDir]);
        Assert.Equal(1, code);
        Assert.Contains("--text /nonexistent/shakespeare.txt: no such file", err);
        Assert.False(Directory.Exists(outDir));
    }

    [Fact]
    public void Hvp_check_and_spectrum_take_the_gpt()
    {
        var dir = Scratch.NewDirectory();
        var json = Path.Combine(dir, "h.json");
        var (code, output, err) = LabCli.Run("hvp-check", "--model", "gpt", "--n", "1", "--width", "8", "--repeats", "1", "--mode", "train", "--json", json);
        Assert.True(code == 0, err + output);
        using (var doc = JsonDocument.Parse(File.ReadAllText(json)))
        {
            Assert.True(doc.RootElement.GetProperty("hvp_fd_rel_error").GetDouble() < 1e-6);
            Assert.True(doc.RootElement.GetProperty("symmetry_rel_error").GetDouble() < 1e-10);
            Assert.Equal("train", doc.RootElement.GetProperty("mode").GetString());
        }

        var rng = new RandomGenerator(3);
        var gpt = new Gpt(new GptConfig(Vocabulary: 11, Context: 8, Layers: 1, Heads: 2, Width: 8), rng);
        string weights = Path.Combine(dir, "gpt.safetensors"), batch = Path.Combine(dir, "tokens.safetensors");
        Safetensors.Write(weights, gpt.StateDict(), new Dictionary<string, string> { ["model"] = "gpt", ["n_head"] = "2" });
        BatchFile.Write(batch, rng.Integers(new Shape(3, 8), 11), rng.Integers(new Shape(3, 8), 11));
        var spectrumJson = Path.Combine(dir, "s.json");
        (code, output, err) = LabCli.Run("spectrum", "--model", "gpt", "--weights", weights, "--batch", batch, "--topk", "2", "--iters", "10", "--probes", "2", "--json", spectrumJson);
        Assert.True(code == 0, err + output);
        using (var doc = JsonDocument.Parse(File.ReadAllText(spectrumJson)))
        {
            Assert.Equal("ce", doc.RootElement.GetProperty("loss_kind").GetString());
            Assert.Equal(gpt.ParameterCount(), doc.RootElement.GetProperty("parameters").GetInt64());
            var top = doc.RootElement.GetProperty("top_eigenvalues").EnumerateArray().Select(e => e.GetDouble()).ToArray();
            Assert.True(top[0] >= top[1] && top[0] > 0);
        }

        // Weights of another configuration: every mismatch listed, nothing computed.
        var other = new Gpt(new GptConfig(Vocabulary: 11, Context: 8, Layers: 2, Heads: 2, Width: 8), rng).StateDict()
            .Where(t => t.Name != "transformer.h.1.mlp.c_fc.bias").Select(t => t.Name == "transformer.ln_f.weight" ? (t.Name, NdArray.Ones(new Shape(4))) : t).ToList();
        Safetensors.Write(weights, other, new Dictionary<string, string> { ["n_head"] = "2" });
        (code, _, err) = LabCli.Run("spectrum", "--model", "gpt", "--weights", weights, "--batch", batch);
        Assert.Equal(1, code);
        Assert.Contains("missing tensor 'transformer.h.1.mlp.c_fc.bias'", err);
        Assert.Contains("'transformer.ln_f.weight' has shape [4], expected [8]", err);
    }

    [Fact]
    public void Learning_rate_warms_up_linearly_then_follows_the_cosine_to_zero()
    {
        Assert.Equal(0.025, Train.LearningRateAt(0.1, "cosine", 4, 0, 104), 12);
        Assert.Equal(0.1, Train.LearningRateAt(0.1, "cosine", 4, 3, 104), 12);
        Assert.Equal(0.1, Train.LearningRateAt(0.1, "cosine", 4, 4, 104), 12);
        Assert.Equal(0.05, Train.LearningRateAt(0.1, "cosine", 4, 54, 104), 12);
        Assert.True(Train.LearningRateAt(0.1, "cosine", 4, 103, 104) < 1e-4);
        Assert.Equal(0.1, Train.LearningRateAt(0.1, "constant", 4, 103, 104), 12);
    }
}
