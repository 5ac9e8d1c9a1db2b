using System.Text.Json;
using Curvature.Lab;

namespace Curvature.Tests.Lab;

/// <summary>The eos verb on a small synthetic data folder: the files it writes and their columns.</summary>
[Collection(ThreadSettings.Name)]
public class EosCliTests
{
    [Fact]
    public void Writes_steps_csv_summary_and_plot()
    {
        var data = LabFiles.FakeFashionMnist();
        var outDir = Path.Combine(Scratch.NewDirectory(), "eos");
        var (code, output, err) = LabCli.Run("eos", "--data", data, "--out", outDir, "--n", "48", "--lrs", "0.1,0.2", "--steps", "12",
            "--probe-every", "4", "--lanczos-iters", "6", "--width", "8");
        Assert.True(code == 0, err + output);

        var lines = File.ReadAllLines(Path.Combine(outDir, "steps.csv"));
        Assert.Equal("step,loss,accuracy,sharpness,lr,top_projection", lines[0]);
        Assert.Equal(1 + 2 * 13, lines.Length);
        var probes = lines.Skip(1).Where(l => l.Split(',')[3] != "").Select(l => int.Parse(l.Split(',')[0])).ToArray();
        Assert.Equal(new[] { 0, 4, 8, 12, 0, 4, 8, 12 }, probes);
        // The displacement along the top eigenvector at every probe: zero at the start, then moving.
        var projections = lines.Skip(1).Select(l => l.Split(',')).Where(c => c[3] != "").Select(c => double.Parse(c[5], System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        Assert.Equal(0, projections[0]);
        Assert.Contains(projections[1..4], p => p != 0);
        Assert.All(lines.Skip(1), l => Assert.True(double.Parse(l.Split(',')[1], System.Globalization.CultureInfo.InvariantCulture) > 0));

        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "summary.json")));
        var runs = doc.RootElement.GetProperty("runs").EnumerateArray().ToArray();
        Assert.Equal(2, runs.Length);
        Assert.Equal(20.0, runs[0].GetProperty("two_over_lr").GetDouble(), 1e-12);
        Assert.True(runs[1].GetProperty("max_sharpness").GetDouble() > 0);
        var png = File.ReadAllBytes(Path.Combine(outDir, "eos.png"));
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png[..4]);
        Assert.Empty(Directory.GetFiles(outDir, "*.tmp"));
    }

    [Theory]
    [InlineData("momentum", "3.8/η")]
    [InlineData("nesterov", "1.357/η")]
    public void Full_batch_momentum_runs_draw_their_own_edge(string optimizer, string edge)
    {
        var data = LabFiles.FakeFashionMnist();
        var outDir = Path.Combine(Scratch.NewDirectory(), "eos");
        var (code, output, err) = LabCli.Run("eos", "--data", data, "--out", outDir, "--n", "48", "--lrs", "0.1", "--steps", "8",
            "--probe-every", "4", "--lanczos-iters", "6", "--width", "8", "--optimizer", optimizer);
        Assert.True(code == 0, err + output);
        Assert.Contains($"full batch: the edge is {edge}", output);
        Assert.Contains($"| η | {edge} |", output);
        Assert.Equal("step,loss,accuracy,sharpness,lr,top_projection", File.ReadLines(Path.Combine(outDir, "steps.csv")).First()); // no minibatch columns
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "summary.json")));
        Assert.Equal(Eos.StabilityLimit(optimizer, 0.9), doc.RootElement.GetProperty("edge").GetDouble(), 1e-12);
    }

    [Fact]
    public void Adam_runs_log_the_preconditioned_sharpness_against_38_over_eta()
    {
        var data = LabFiles.FakeFashionMnist();
        var outDir = Path.Combine(Scratch.NewDirectory(), "eos");
        var (code, output, err) = LabCli.Run("eos", "--data", data, "--out", outDir, "--n", "48", "--lrs", "0.01", "--steps", "8",
            "--probe-every", "4", "--lanczos-iters", "8", "--width", "8", "--optimizer", "adam");
        Assert.True(code == 0, err + output);
        Assert.Contains("against its edge 38/η", output);
        var lines = File.ReadAllLines(Path.Combine(outDir, "steps.csv"));
        Assert.Equal("step,loss,accuracy,sharpness,lr,top_projection,preconditioned_sharpness", lines[0]);
        // Probes after steps 4 and 8 (none before the first step, when v = 0); each is finite and, P⁻¹ being large early
        // in training (v̂ small), far above the raw λmax.
        var rows = lines.Skip(1).Select(l => l.Split(',')).Where(c => c[6] != "").ToArray();
        Assert.Equal(new[] { "4", "8" }, rows.Select(c => c[0]));
        Assert.All(rows, c => Assert.True(double.Parse(c[6], System.Globalization.CultureInfo.InvariantCulture) > double.Parse(c[3], System.Globalization.CultureInfo.InvariantCulture)));
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "summary.json")));
        Assert.Equal(38, doc.RootElement.GetProperty("edge").GetDouble(), 1e-12);
    }

    [Fact]
    public void Sgd_runs_log_lambda_max_beside_the_batch_sharpness_and_the_noise_along_the_top_eigenvector()
    {
        var data = LabFiles.FakeFashionMnist();
        var outDir = Path.Combine(Scratch.NewDirectory(), "sgd");
        var (code, output, err) = LabCli.Run("eos", "--data", data, "--out", outDir, "--n", "48", "--lrs", "0.1", "--steps", "12", "--probe-every", "4",
            "--lanczos-iters", "6", "--width", "8", "--optimizer", "sgd", "--batch", "8", "--samples", "3");
        Assert.True(code == 0, err + output);
        var lines = File.ReadAllLines(Path.Combine(outDir, "steps.csv"));
        Assert.Equal("step,loss,accuracy,sharpness,lr,top_projection,batch_sharpness,batch_sharpness_stderr,noise_along_top,batch_sharpness_ratio_of_means", lines[0]);
        var rows = lines.Skip(1).Select(l => l.Split(',')).ToArray();
        // λmax at steps 0, 4, 8, 12; the batch probes at the weights of steps 4, 8 and 12 (after each T-th update).
        Assert.Equal(new[] { "4", "8", "12" }, rows.Where(r => r[6] != "").Select(r => r[0]));
        Assert.All(rows.Where(r => r[6] != ""), r =>
        {
            Assert.True(double.Parse(r[6], System.Globalization.CultureInfo.InvariantCulture) > 0);
            Assert.True(double.Parse(r[8], System.Globalization.CultureInfo.InvariantCulture) >= 0);
        });
        Assert.Contains("median η·batch sharpness", output);
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "summary.json")));
        Assert.Equal("sgd", doc.RootElement.GetProperty("optimizer").GetString());
        Assert.Equal(8, doc.RootElement.GetProperty("batch").GetInt32());
        var (bad, _, e2) = LabCli.Run("eos", "--data", data, "--out", Path.Combine(Scratch.NewDirectory(), "x"), "--n", "48", "--optimizer", "sgd", "--batch", "64");
        Assert.Equal(2, bad);
        Assert.Contains("--batch 64 is larger than the 48 training images", e2);
    }

    [Fact]
    public void Flow_writes_the_gradient_flow_from_the_same_start_at_the_probe_steps_times()
    {
        var data = LabFiles.FakeFashionMnist();
        var outDir = Path.Combine(Scratch.NewDirectory(), "flow");
        var (code, output, err) = LabCli.Run("eos", "--data", data, "--out", outDir, "--n", "48", "--lrs", "0.1", "--steps", "12",
            "--probe-every", "4", "--lanczos-iters", "6", "--width", "8", "--flow", "--flow-max-step", "0.05");
        Assert.True(code == 0, err + output);
        var lines = File.ReadAllLines(Path.Combine(outDir, "flow.csv"));
        Assert.Equal("lr,step,time,loss,sharpness,top_projection,gradients", lines[0]);
        var rows = lines.Skip(1).Select(l => l.Split(',').Select(v => double.Parse(v, System.Globalization.CultureInfo.InvariantCulture)).ToArray()).ToArray();
        Assert.Equal(new double[] { 0, 4, 8, 12 }, rows.Select(r => r[1]));
        Assert.All(rows, r => Assert.Equal(0.1 * r[1], r[2], 1e-12));                   // t = η·step
        // At most Δmax = 0.05 a step: 0.4 of time per tick takes at least 8 RK4 steps, 4 gradients each.
        Assert.All(rows.Skip(1).Zip(rows), p => Assert.True(p.First[6] - p.Second[6] >= 32, $"{p.First[6] - p.Second[6]} gradients in a tick"));
        Assert.All(rows.Skip(1).Zip(rows), p => Assert.True(p.First[3] <= p.Second[3] + 1e-6, "the flow's loss rose"));
        var gd = File.ReadAllLines(Path.Combine(outDir, "steps.csv")).Skip(1).Select(l => l.Split(',')).First();
        Assert.Equal(double.Parse(gd[1], System.Globalization.CultureInfo.InvariantCulture), rows[0][3], 1e-6);   // the same start
        Assert.Contains("gradient flow from the same start", output);
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "summary.json")));
        var flow = doc.RootElement.GetProperty("runs")[0].GetProperty("flow");
        Assert.Equal(1.2, flow.GetProperty("time").GetDouble(), 1e-12);
        Assert.Equal((int)rows[^1][6], flow.GetProperty("gradients").GetInt32());

        var (bad, _, e2) = LabCli.Run("eos", "--data", data, "--out", Path.Combine(Scratch.NewDirectory(), "x"), "--n", "48", "--optimizer", "momentum", "--flow");
        Assert.Equal(2, bad);
        Assert.Contains("--flow is the limit of full-batch gradient descent", e2);
    }

    [Fact]
    public void Resnet20_trains_on_the_images_as_one_channel_pictures_with_training_mode_batchnorm()
    {
        var data = LabFiles.FakeFashionMnist();
        var outDir = Path.Combine(Scratch.NewDirectory(), "resnet");
        var (code, output, err) = LabCli.Run("eos", "--model", "resnet20", "--width", "4", "--data", data, "--out", outDir, "--n", "8", "--lrs", "0.05",
            "--steps", "4", "--probe-every", "2", "--lanczos-iters", "4");
        Assert.True(code == 0, err + output);
        Assert.Contains("ResNet-20 (width 4", output);
        var rows = File.ReadAllLines(Path.Combine(outDir, "steps.csv")).Skip(1).Select(l => l.Split(',')).ToArray();
        Assert.Equal(new[] { "0", "2", "4" }, rows.Where(r => r[3] != "").Select(r => r[0]));
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "summary.json")));
        Assert.Equal("resnet20", doc.RootElement.GetProperty("model").GetString());
        Assert.Equal("mse", doc.RootElement.GetProperty("loss").GetString());        // the experiment's loss for every model unless --loss
        Assert.True(doc.RootElement.GetProperty("runs")[0].GetProperty("max_sharpness").GetDouble() > 0);
    }

    [Fact]
    public void Gpt_trains_on_fixed_character_windows_and_refuses_a_width_its_heads_do_not_divide()
    {
        var text = Path.Combine(Scratch.NewDirectory(), "tiny.txt");
        File.WriteAllText(text, string.Concat(Enumerable.Repeat("To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n", 40)));
        var outDir = Path.Combine(Scratch.NewDirectory(), "gpt");
        string[] tiny = ["eos", "--model", "gpt", "--text", text, "--layers", "1", "--width", "8", "--context", "8", "--n", "4", "--lrs", "0.1", "--steps", "4", "--probe-every", "2", "--lanczos-iters", "4"];
        var (code, output, err) = LabCli.Run([.. tiny, "--heads", "2", "--loss", "ce", "--out", outDir]);
        Assert.True(code == 0, err + output);
        Assert.Contains("GPT 1 layers, 2 heads, width 8, context 8", output);
        var rows = File.ReadAllLines(Path.Combine(outDir, "steps.csv")).Skip(1).Select(l => l.Split(',')).ToArray();
        Assert.Equal(5, rows.Length);
        // Next-character accuracy over the 4 × 8 positions, and a cross-entropy near log(vocabulary) at the start.
        Assert.All(rows, r => Assert.Equal(0, double.Parse(r[2], System.Globalization.CultureInfo.InvariantCulture) * 32 % 1, 6));
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "summary.json")));
        Assert.Equal(8, doc.RootElement.GetProperty("gpt").GetProperty("context").GetInt32());

        var (bad, _, e2) = LabCli.Run([.. tiny, "--heads", "3", "--out", Path.Combine(Scratch.NewDirectory(), "x")]);
        Assert.Equal(2, bad);
        Assert.Contains("--heads 3 does not divide the GPT's width 8", e2);
        var (missing, _, e3) = LabCli.Run([.. tiny.Select(a => a == text ? "/no/such/corpus.txt" : a), "--heads", "2", "--out", Path.Combine(Scratch.NewDirectory(), "y")]);
        Assert.Equal(1, missing);
        Assert.Contains("--text /no/such/corpus.txt: no such file", e3);
    }

    [Theory]
    [InlineData("--model", "vgg")]
    [InlineData("--flow-alpha", "3")]
    [InlineData("--flow-max-step", "0")]
    [InlineData("--lrs", "0.1,abc")]
    [InlineData("--lrs", "-0.1")]
    [InlineData("--steps", "-3")]
    public void Bad_values_exit_with_code_2(string option, string value)
    {
        var outDir = Path.Combine(Scratch.NewDirectory(), "never-written");
        Assert.Equal(2, LabCli.Run("eos", option, value, "--out", outDir).Code);
        Assert.False(Directory.Exists(outDir));
    }

    [Fact]
    public void Missing_data_folder_fails_with_one_message()
    {
        var outDir = Path.Combine(Scratch.NewDirectory(), "eos-missing");
        var (code, _, err) = LabCli.Run("eos", "--data", "/no/such/fmnist", "--out", outDir);
        Assert.Equal(1, code);
        Assert.Contains("dataset-fashion-mnist", err);
        Assert.False(Directory.Exists(outDir), "the output folder is made only once the data has loaded");
    }
}
