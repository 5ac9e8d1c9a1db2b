using System.Globalization;
using System.Text.Json;
using Curvature.Lab;

namespace Curvature.Tests.Lab;

/// <summary>The compare verb on synthetic data: per-run logs, report, summary, plots, and bad usage.</summary>
[Collection(ThreadSettings.Name)]
public class CompareCliTests
{
    [Fact]
    public void Writes_per_run_logs_a_report_and_keeps_caeo_below_the_edge()
    {
        var data = LabFiles.FakeFashionMnist(train: 80, test: 16);
        var outDir = Path.Combine(Scratch.NewDirectory(), "cmp");
        var (code, output, err) = LabCli.Run("compare", "--data", data, "--out", outDir, "--optimizers", "sgd,caeo,dcao,hidlr,l4", "--seeds", "2",
            "--steps", "8", "--batch", "16", "--train", "64", "--val", "16", "--probe-batch", "16", "--probe-every", "2", "--window", "3", "--delta", "0.5",
            "--eval-every", "4", "--audit-every", "2", "--light-probe-iters", "6");
        Assert.True(code == 0, err + output);

        foreach (var opt in new[] { "sgd", "caeo", "dcao", "hidlr", "l4" })
            for (int seed = 0; seed < 2; seed++)
            {
                var lines = File.ReadAllLines(Path.Combine(outDir, opt, $"seed{seed}", "steps.csv"));
                Assert.Equal("step,loss,lr,momentum,weight_decay,sharpness,lr_times_sharpness,sharpness_lanczos,val_loss,val_accuracy,seconds", lines[0]);
                Assert.Equal(9, lines.Length);
                // Validation loss after steps 4 and 8 only.
                Assert.Equal([3, 7], lines.Skip(1).Select(l => l.Split(',')).Where(f => f[8] != "").Select(f => int.Parse(f[0], CultureInfo.InvariantCulture)));
                // The weights at step 0 and the probe batch, to recompute any probe.
                var init = Curvature.Models.Safetensors.Read(Path.Combine(outDir, opt, $"seed{seed}", "init.safetensors"));
                Assert.Equal("mlp", init.Metadata["model"]);
                Assert.Equal(6, init.Tensors.Count);
                var probe = Curvature.Models.Safetensors.Read(Path.Combine(outDir, opt, $"seed{seed}", "probe_batch.safetensors")).ByName();
                Assert.Equal(new Curvature.Engine.Shape(16, 784), probe["inputs"].Shape);
                Assert.Equal(new Curvature.Engine.Shape(16), probe["targets"].Shape);
            }
        // CAEO: a probe at every second step, and η·λmax ≤ 2 − δ at each.
        var caeo = File.ReadAllLines(Path.Combine(outDir, "caeo", "seed0", "steps.csv")).Skip(1).Select(l => l.Split(',')).ToArray();
        Assert.Equal(new[] { 0, 2, 4, 6 }, caeo.Where(f => f[5] != "").Select(f => int.Parse(f[0], CultureInfo.InvariantCulture)));
        Assert.All(caeo.Where(f => f[6] != ""), f => Assert.True(double.Parse(f[6], CultureInfo.InvariantCulture) <= 1.5 + 1e-6));
        // Every second probe audited: steps 0 and 4.
        Assert.Equal(new[] { 0, 4 }, caeo.Where(f => f[7] != "").Select(f => int.Parse(f[0], CultureInfo.InvariantCulture)));

        var report = File.ReadAllText(Path.Combine(outDir, "report.md"));
        Assert.Contains("Command: `./lab compare --data ", report);
        foreach (var h in new[] { "steps to the training-loss target", "epochs to the validation target", "final validation loss", "stability", "test accuracy", "ECE",
                                  "wall-clock", "GFLOP/sample", "time probing", "audit: estimate / converged λmax", "**training-mode** loss", "95 % Student-t", "## Verdicts" })
            Assert.Contains(h, report);
        Assert.Contains("`caeo` against `", report);
        Assert.Contains("`dcao` against `", report);
        foreach (var opt in new[] { "| sgd |", "| caeo |", "| dcao |", "| hidlr |", "| l4 |" }) Assert.Contains(opt, report);
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "summary.json")));
        Assert.Equal("train", doc.RootElement.GetProperty("probe_mode").GetString());
        var runs = doc.RootElement.GetProperty("runs").EnumerateArray().ToArray();
        Assert.Equal(10, runs.Length);
        Assert.All(runs, r => Assert.True(r.GetProperty("val_loss").GetDouble() > 0));
        Assert.All(runs.Where(r => r.GetProperty("optimizer").GetString() == "sgd"), r => Assert.Equal(0, r.GetProperty("probe_flops_per_sample").GetDouble()));
        Assert.All(runs.Where(r => r.GetProperty("optimizer").GetString() == "caeo"), r => Assert.True(r.GetProperty("probe_flops_per_sample").GetDouble() > 0));
        Assert.All(runs, r => Assert.True(r.GetProperty("train_flops_per_sample").GetDouble() > 2 * 199_210));
        foreach (var png in new[] { "loss.png", "val_loss.png", "lr.png", "sharpness.png" }) Assert.True(File.Exists(Path.Combine(outDir, png)), png);
        // Every configuration draws in its own color (its place in the comparison, Category10) in the loss plot.
        string[] order = ["sgd", "caeo", "dcao", "hidlr", "l4"];
        int Pixels(string png, int i)
        {
            using var bitmap = SkiaSharp.SKBitmap.Decode(Path.Combine(outDir, png));
            Assert.Equal((1100, 550), (bitmap.Width, bitmap.Height));
            var c = new ScottPlot.Palettes.Category10().GetColor(i);
            return bitmap.Pixels.Count(p => Math.Abs(p.Red - c.R) + Math.Abs(p.Green - c.G) + Math.Abs(p.Blue - c.B) < 12);
        }
        for (int i = 0; i < order.Length; i++) Assert.True(Pixels("loss.png", i) > 20, $"loss.png: {order[i]}'s color is missing");
        // The baselines get a light probe every T steps (their sharpness beside CAEO's estimate), the same plot shows both.
        var sgd = File.ReadAllLines(Path.Combine(outDir, "sgd", "seed0", "steps.csv")).Skip(1).Select(l => l.Split(',')).ToArray();
        Assert.Equal(new[] { 0, 2, 4, 6 }, sgd.Where(f => f[5] != "").Select(f => int.Parse(f[0], CultureInfo.InvariantCulture)));
        Assert.True(Pixels("sharpness.png", 1) > 4, "sharpness.png: caeo's estimate is missing");
        Assert.True(Pixels("sharpness.png", 0) > 4, "sharpness.png: sgd's light probe is missing");
    }

    [Fact]
    public void A_resumed_run_takes_exactly_the_steps_of_an_uninterrupted_one()
    {
        var data = LabFiles.FakeFashionMnist(train: 80, test: 16);
        string[] Args(string outDir, int steps, params string[] extra) =>
            ["compare", "--data", data, "--out", outDir, "--optimizers", "caeo,dcao,adam", "--seeds", "1", "--steps", steps.ToString(CultureInfo.InvariantCulture),
             "--batch", "24", "--train", "64", "--val", "16", "--probe-batch", "16", "--probe-every", "3", "--window", "3", "--checkpoint-every", "4", .. extra];
        var whole = Path.Combine(Scratch.NewDirectory(), "whole");
        var parts = Path.Combine(Scratch.NewDirectory(), "parts");
        Assert.Equal(0, LabCli.Run(Args(whole, 10)).Code);
        Assert.Equal(0, LabCli.Run(Args(parts, 6)).Code);
        var (code, output, err) = LabCli.Run(Args(parts, 10, "--resume"));
        Assert.True(code == 0, err + output);
        foreach (var opt in new[] { "caeo", "dcao", "adam" })
        {
            // Step, loss, η, μ, λ, the probes and their audits agree bit for bit (the shorter first run also evaluated the
            // validation loss at its own last step, and wall-clock differs).
            string[] Cells(string dir) => File.ReadAllLines(Path.Combine(dir, opt, "seed0", "steps.csv")).Select(l => string.Join(',', l.Split(',')[..8])).ToArray();
            Assert.Equal(Cells(whole), Cells(parts));
        }
        using var da = JsonDocument.Parse(File.ReadAllText(Path.Combine(whole, "summary.json")));
        using var db = JsonDocument.Parse(File.ReadAllText(Path.Combine(parts, "summary.json")));
        var ra = da.RootElement.GetProperty("runs").EnumerateArray().Select(r => (r.GetProperty("final_loss").GetDouble(), r.GetProperty("test_accuracy").GetDouble())).ToArray();
        var rb = db.RootElement.GetProperty("runs").EnumerateArray().Select(r => (r.GetProperty("final_loss").GetDouble(), r.GetProperty("test_accuracy").GetDouble())).ToArray();
        Assert.Equal(ra, rb);
    }

    [Fact]
    public void A_checkpoint_of_another_optimizer_is_refused_naming_the_file()
    {
        var data = LabFiles.FakeFashionMnist(train: 48, test: 8);
        var outDir = Path.Combine(Scratch.NewDirectory(), "cmp");
        Assert.Equal(0, LabCli.Run("compare", "--data", data, "--out", outDir, "--optimizers", "sgd", "--seeds", "1", "--steps", "2", "--batch", "16", "--train", "32", "--val", "16").Code);
        File.Copy(Path.Combine(outDir, "sgd", "seed0", "checkpoint.safetensors"), Path.Combine(Directory.CreateDirectory(Path.Combine(outDir, "adam", "seed0")).FullName, "checkpoint.safetensors"));
        File.Copy(Path.Combine(outDir, "sgd", "seed0", "steps.csv"), Path.Combine(outDir, "adam", "seed0", "steps.csv"));
        var (code, _, err) = LabCli.Run("compare", "--data", data, "--out", outDir, "--optimizers", "adam", "--seeds", "1", "--steps", "4", "--batch", "16", "--train", "32", "--val", "16", "--resume");
        Assert.Equal(1, code);
        Assert.Contains("checkpoint.safetensors", err);
        Assert.Contains("optimizer 'sgd', not 'adam'", err);
    }

    [Fact]
    public void Optimizer_specs_set_hyperparameters_and_the_probe_mode_reaches_the_summary()
    {
        var data = LabFiles.FakeFashionMnist(train: 48, test: 8);
        var outDir = Path.Combine(Scratch.NewDirectory(), "specs");
        var (code, output, err) = LabCli.Run("compare", "--data", data, "--out", outDir, "--optimizers", "sgd:lr=0.2,momentum:lr=0.01:mu=0.5,caeo:lr=0.3:delta=1",
            "--seeds", "1", "--steps", "3", "--batch", "16", "--train", "32", "--val", "16", "--probe-mode", "eval", "--probe-every", "1");
        Assert.True(code == 0, err + output);
        string[] Row(string folder) => File.ReadAllLines(Path.Combine(outDir, folder, "seed0", "steps.csv"))[1].Split(',');
        Assert.Equal("0.2", Row("sgd_lr_0.2")[2]);
        Assert.Equal(("0.01", "0.5"), (Row("momentum_lr_0.01_mu_0.5")[2], Row("momentum_lr_0.01_mu_0.5")[3]));
        var caeo = Row("caeo_lr_0.3_delta_1");
        Assert.True(double.Parse(caeo[6], CultureInfo.InvariantCulture) <= 1 + 1e-9);
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "summary.json")));
        Assert.Equal("eval", doc.RootElement.GetProperty("probe_mode").GetString());
        Assert.Contains("**evaluation-mode** loss", File.ReadAllText(Path.Combine(outDir, "report.md")));
    }

    [Fact]
    public void Init_starts_every_run_from_given_weights_and_reset_head_keeps_a_fresh_head()
    {
        var data = LabFiles.FakeFashionMnist(train: 48, test: 8);
        string[] Args(string outDir, params string[] extra) =>
            ["compare", "--data", data, "--out", outDir, "--optimizers", "sgd", "--seeds", "2", "--steps", "2", "--batch", "16", "--train", "32", "--val", "16", "--audit-every", "0", .. extra];
        var pre = Path.Combine(Scratch.NewDirectory(), "pre");
        Assert.Equal(0, LabCli.Run(Args(pre)).Code);
        var fine = Path.Combine(Scratch.NewDirectory(), "fine");
        var (code, output, err) = LabCli.Run(Args(fine, "--init", Path.Combine(pre, "sgd", "seed{seed}", "model.safetensors"), "--reset-head"));
        Assert.True(code == 0, err + output);
        for (int seed = 0; seed < 2; seed++)
        {
            var given = Curvature.Models.Safetensors.Read(Path.Combine(pre, "sgd", $"seed{seed}", "model.safetensors")).ByName();
            var fresh = Curvature.Models.Safetensors.Read(Path.Combine(pre, "sgd", $"seed{seed}", "init.safetensors")).ByName();
            var start = Curvature.Models.Safetensors.Read(Path.Combine(fine, "sgd", $"seed{seed}", "init.safetensors")).ByName();
            foreach (var (name, t) in start)
                Assert.Equal((name.StartsWith("5.", StringComparison.Ordinal) ? fresh : given)[name].ToArray<float>(), t.ToArray<float>());
            Assert.NotEqual(given["5.weight"].ToArray<float>(), start["5.weight"].ToArray<float>());
        }
        // Weights of another model: one message naming the file and the tensor, exit 1, nothing written.
        var wrong = Path.Combine(Scratch.NewDirectory(), "wrong");
        (code, _, err) = LabCli.Run([.. Args(wrong, "--init", Path.Combine(pre, "sgd", "seed0", "model.safetensors")).Select(a => a == "sgd" ? "sgd" : a), "--task", "resnet20-fmnist"]);
        Assert.Equal(1, code);
        Assert.Contains("model.safetensors", err);
        Assert.False(Directory.Exists(wrong));
    }

    [Fact]
    public void The_tuned_preset_runs_the_seeds_at_each_optimizers_best_rate_on_the_validation_loss()
    {
        var data = LabFiles.FakeFashionMnist(train: 80, test: 8);
        var outDir = Path.Combine(Scratch.NewDirectory(), "tuned");
        var (code, output, err) = LabCli.Run("compare", "--data", data, "--out", outDir, "--preset", "tuned", "--optimizers", "sgd,l4", "--tune-grid", "0.1,1,10",
            "--seeds", "2", "--steps", "6", "--tune-steps", "4", "--batch", "16", "--train", "64", "--val", "16", "--eval-every", "2", "--audit-every", "0");
        Assert.True(code == 0, err + output);
        foreach (var (name, key, values) in new[] { ("sgd", "lr", new[] { 0.01, 0.1, 1 }), ("l4", "alpha", new[] { 0.015, 0.15, 1.5 }) })
        {
            using var grid = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "tune", name, "summary.json")));
            var losses = grid.RootElement.GetProperty("runs").EnumerateArray()
                .Select(r => (r.GetProperty("optimizer").GetString()!, r.GetProperty("val_loss").ValueKind == JsonValueKind.Number ? r.GetProperty("val_loss").GetDouble() : double.PositiveInfinity)).ToArray();
            Assert.Equal(3, losses.Length);
            int best = Array.IndexOf(losses, losses.MinBy(l => l.Item2));
            string chosen = $"{name}:{key}={values[best].ToString("G4", CultureInfo.InvariantCulture)}";
            Assert.True(Directory.Exists(Path.Combine(outDir, Curvature.Lab.Compare.FolderName(chosen), "seed1")), chosen);
        }
        var report = File.ReadAllText(Path.Combine(outDir, "report.md"));
        Assert.Contains("## Tuning", report);
        Assert.True(File.Exists(Path.Combine(outDir, "sensitivity.png")));
    }

    [Fact]
    public void A_divergent_run_is_counted_and_the_comparison_still_reports()
    {
        var data = LabFiles.FakeFashionMnist(train: 48, test: 8);
        var outDir = Path.Combine(Scratch.NewDirectory(), "diverge");
        var (code, output, err) = LabCli.Run("compare", "--data", data, "--out", outDir, "--optimizers", "sgd:lr=1e38,sgd", "--seeds", "1", "--steps", "8",
            "--batch", "16", "--train", "32", "--val", "16", "--audit-every", "0");
        Assert.True(code == 0, err + output);
        Assert.Contains("sgd:lr=1E+38 seed 0: the loss at step 1 is not finite", output);
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "summary.json")));
        var runs = doc.RootElement.GetProperty("runs").EnumerateArray().ToArray();
        Assert.Equal(JsonValueKind.Number, runs[0].GetProperty("diverged_at").ValueKind);
        Assert.Equal(JsonValueKind.Null, runs[0].GetProperty("test_accuracy").ValueKind);
        Assert.Equal(JsonValueKind.Null, runs[1].GetProperty("diverged_at").ValueKind);
        Assert.Contains("| 1/1 |", File.ReadAllText(Path.Combine(outDir, "report.md")));
    }

    [Theory]
    [InlineData("sgd:mu=0.9", "unknown key 'mu'; valid: lr, wd")]
    [InlineData("caeo:delta=2", "delta=2 is out of range")]
    [InlineData("adam:lr=fast", "lr=fast is not a number")]
    public void A_bad_optimizer_spec_exits_with_code_2_naming_the_key(string spec, string message)
    {
        var outDir = Path.Combine(Scratch.NewDirectory(), "never");
        var (code, output, err) = LabCli.Run("compare", "--optimizers", spec, "--out", outDir);
        Assert.Equal(2, code);
        Assert.Contains(message, err + output);
        Assert.False(Directory.Exists(outDir));
    }

    [Fact]
    public void An_unknown_optimizer_lists_the_valid_ones_and_exits_with_code_2()
    {
        var outDir = Path.Combine(Scratch.NewDirectory(), "never-compared");
        var (code, output, err) = LabCli.Run("compare", "--optimizers", "sgd,adamm", "--out", outDir);
        Assert.Equal(2, code);
        Assert.Contains("adamm", err + output);
        Assert.Contains("caeo", err + output);
        Assert.False(Directory.Exists(outDir));
    }
}

/// <summary>compare on the ResNet and GPT tasks (tiny runs): the task reaches the report and the probes run through BatchNorm and attention.</summary>
[Collection(ThreadSettings.Name)]
public class CompareTaskTests
{
    [Fact]
    public void Resnet_and_gpt_tasks_train_probe_and_report()
    {
        var data = LabFiles.FakeFashionMnist(train: 48, test: 16);
        var resnet = Path.Combine(Scratch.NewDirectory(), "resnet");
        var (code, output, err) = LabCli.Run("compare", "--task", "resnet20-fmnist", "--data", data, "--out", resnet, "--optimizers", "momentum,caeo",
            "--seeds", "1", "--steps", "3", "--batch", "8", "--train", "32", "--val", "16", "--probe-batch", "4", "--probe-every", "2", "--window", "2", "--audit-every", "0",
            "--light-probe-iters", "4");
        Assert.True(code == 0, err + output);
        Assert.Contains("ResNet-20", File.ReadAllText(Path.Combine(resnet, "report.md")));
        var caeo = File.ReadAllLines(Path.Combine(resnet, "caeo", "seed0", "steps.csv")).Skip(1).Select(l => l.Split(',')).ToArray();
        Assert.True(caeo[0][5].Length > 0 && double.Parse(caeo[0][5], CultureInfo.InvariantCulture) > 0, "CAEO probed λmax through training-mode BatchNorm");

        var text = Path.Combine(Scratch.NewDirectory(), "t.txt");
        File.WriteAllText(text, string.Concat(Enumerable.Repeat("Now is the winter of our discontent\nMade glorious summer by this sun of York;\n", 60)));
        var gpt = Path.Combine(Scratch.NewDirectory(), "gpt");
        (code, output, err) = LabCli.Run("compare", "--task", "gpt-shakespeare", "--text", text, "--out", gpt, "--optimizers", "adamw,caeo",
            "--seeds", "1", "--steps", "2", "--batch", "2", "--probe-batch", "1", "--probe-every", "2", "--window", "2", "--audit-every", "0",
            "--layers", "1", "--width", "32", "--heads", "2", "--context", "32", "--light-probe-iters", "4");
        Assert.True(code == 0, err + output);
        Assert.Contains("GPT 1 layers", File.ReadAllText(Path.Combine(gpt, "report.md")));
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(gpt, "summary.json")));
        Assert.All(doc.RootElement.GetProperty("runs").EnumerateArray(), r => Assert.InRange(r.GetProperty("test_accuracy").GetDouble(), 0, 1));
    }

    [Fact]
    public void Caeo_with_kfac_runs_on_resnet()
    {
        var data = LabFiles.FakeFashionMnist(train: 48, test: 16);
        var dir = Path.Combine(Scratch.NewDirectory(), "k");
        var (code, output, err) = LabCli.Run("compare", "--task", "resnet20-fmnist", "--data", data, "--out", dir,
            "--optimizers", "caeo", "--estimator", "kfac", "--seeds", "1", "--steps", "2", "--batch", "8", "--train", "32", "--val", "16", "--probe-batch", "4", "--probe-every", "1", "--audit-every", "0");
        Assert.True(code == 0, err + output);
        var rows = File.ReadAllLines(Path.Combine(dir, "caeo", "seed0", "steps.csv")).Skip(1).Select(l => l.Split(',')).ToArray();
        Assert.All(rows, r => Assert.True(double.Parse(r[5], CultureInfo.InvariantCulture) > 0));
    }
}
