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
        var data = LabFiles.FakeFashionMnist(train: 64, test: 16);
        var outDir = Path.Combine(Scratch.NewDirectory(), "cmp");
        var (code, output, err) = LabCli.Run("compare", "--data", data, "--out", outDir, "--optimizers", "sgd,caeo,dcao,hidlr,l4", "--seeds", "2",
            "--steps", "8", "--batch", "16", "--train", "64", "--probe-batch", "16", "--probe-every", "2", "--window", "3", "--delta", "0.5");
        Assert.True(code == 0, err + output);

        foreach (var opt in new[] { "sgd", "caeo", "dcao", "hidlr", "l4" })
            for (int seed = 0; seed < 2; seed++)
            {
                var lines = File.ReadAllLines(Path.Combine(outDir, opt, $"seed{seed}", "steps.csv"));
                Assert.Equal("step,loss,lr,momentum,weight_decay,sharpness,lr_times_sharpness", lines[0]);
                Assert.Equal(9, lines.Length);
            }
        // CAEO: a probe at every second step, and η·λmax ≤ 2 − δ at each.
        var caeo = File.ReadAllLines(Path.Combine(outDir, "caeo", "seed0", "steps.csv")).Skip(1).Select(l => l.Split(',')).ToArray();
        Assert.Equal(new[] { 0, 2, 4, 6 }, caeo.Where(f => f[5] != "").Select(f => int.Parse(f[0], CultureInfo.InvariantCulture)));
        Assert.All(caeo.Where(f => f[6] != ""), f => Assert.True(double.Parse(f[6], CultureInfo.InvariantCulture) <= 1.5 + 1e-6));

        var report = File.ReadAllText(Path.Combine(outDir, "report.md"));
        Assert.Contains("Command: `./lab compare --data ", report);
        foreach (var h in new[] { "steps to target", "stability", "test accuracy", "ECE", "wall-clock", "GFLOP/sample", "time probing" }) Assert.Contains(h, report);
        foreach (var opt in new[] { "| sgd |", "| caeo |", "| dcao |", "| hidlr |", "| l4 |" }) Assert.Contains(opt, report);
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "summary.json")));
        var runs = doc.RootElement.GetProperty("runs").EnumerateArray().ToArray();
        Assert.Equal(10, runs.Length);
        Assert.All(runs.Where(r => r.GetProperty("optimizer").GetString() == "sgd"), r => Assert.Equal(0, r.GetProperty("probe_flops_per_sample").GetDouble()));
        Assert.All(runs.Where(r => r.GetProperty("optimizer").GetString() == "caeo"), r => Assert.True(r.GetProperty("probe_flops_per_sample").GetDouble() > 0));
        Assert.All(runs, r => Assert.True(r.GetProperty("train_flops_per_sample").GetDouble() > 2 * 199_210));
        foreach (var png in new[] { "loss.png", "lr.png", "sharpness.png" }) Assert.True(File.Exists(Path.Combine(outDir, png)), png);
    }

    [Fact]
    public void A_resumed_run_takes_exactly_the_steps_of_an_uninterrupted_one()
    {
        var data = LabFiles.FakeFashionMnist(train: 64, test: 16);
        string[] Args(string outDir, int steps, params string[] extra) =>
            ["compare", "--data", data, "--out", outDir, "--optimizers", "caeo,dcao,adam", "--seeds", "1", "--steps", steps.ToString(CultureInfo.InvariantCulture),
             "--batch", "24", "--train", "64", "--probe-batch", "16", "--probe-every", "3", "--window", "3", "--checkpoint-every", "4", .. extra];
        var whole = Path.Combine(Scratch.NewDirectory(), "whole");
        var parts = Path.Combine(Scratch.NewDirectory(), "parts");
        Assert.Equal(0, LabCli.Run(Args(whole, 10)).Code);
        Assert.Equal(0, LabCli.Run(Args(parts, 6)).Code);
        var (code, output, err) = LabCli.Run(Args(parts, 10, "--resume"));
        Assert.True(code == 0, err + output);
        foreach (var opt in new[] { "caeo", "dcao", "adam" })
        {
            var a = File.ReadAllLines(Path.Combine(whole, opt, "seed0", "steps.csv"));
            var b = File.ReadAllLines(Path.Combine(parts, opt, "seed0", "steps.csv"));
            Assert.Equal(a, b);
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
        var data = LabFiles.FakeFashionMnist(train: 32, test: 8);
        var outDir = Path.Combine(Scratch.NewDirectory(), "cmp");
        Assert.Equal(0, LabCli.Run("compare", "--data", data, "--out", outDir, "--optimizers", "sgd", "--seeds", "1", "--steps", "2", "--batch", "16", "--train", "32").Code);
        File.Copy(Path.Combine(outDir, "sgd", "seed0", "checkpoint.safetensors"), Path.Combine(Directory.CreateDirectory(Path.Combine(outDir, "adam", "seed0")).FullName, "checkpoint.safetensors"));
        File.Copy(Path.Combine(outDir, "sgd", "seed0", "steps.csv"), Path.Combine(outDir, "adam", "seed0", "steps.csv"));
        var (code, _, err) = LabCli.Run("compare", "--data", data, "--out", outDir, "--optimizers", "adam", "--seeds", "1", "--steps", "4", "--batch", "16", "--train", "32", "--resume");
        Assert.Equal(1, code);
        Assert.Contains("checkpoint.safetensors", err);
        Assert.Contains("optimizer 'sgd', not 'adam'", err);
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
        var data = LabFiles.FakeFashionMnist(train: 32, test: 16);
        var resnet = Path.Combine(Scratch.NewDirectory(), "resnet");
        var (code, output, err) = LabCli.Run("compare", "--task", "resnet20-fmnist", "--data", data, "--out", resnet, "--optimizers", "momentum,caeo",
            "--seeds", "1", "--steps", "3", "--batch", "8", "--train", "32", "--probe-batch", "4", "--probe-every", "2", "--window", "2");
        Assert.True(code == 0, err + output);
        Assert.Contains("ResNet-20", File.ReadAllText(Path.Combine(resnet, "report.md")));
        var caeo = File.ReadAllLines(Path.Combine(resnet, "caeo", "seed0", "steps.csv")).Skip(1).Select(l => l.Split(',')).ToArray();
        Assert.True(caeo[0][5].Length > 0 && double.Parse(caeo[0][5], CultureInfo.InvariantCulture) > 0, "CAEO probed λmax through training-mode BatchNorm");

        var text = Path.Combine(Scratch.NewDirectory(), "t.txt");
        File.WriteAllText(text, string.Concat(Enumerable.Repeat("Now is the winter of our discontent\nMade glorious summer by this sun of York;\n", 60)));
        var gpt = Path.Combine(Scratch.NewDirectory(), "gpt");
        (code, output, err) = LabCli.Run("compare", "--task", "gpt-shakespeare", "--text", text, "--out", gpt, "--optimizers", "adamw,caeo",
            "--seeds", "1", "--steps", "2", "--batch", "2", "--probe-batch", "1", "--probe-every", "2", "--window", "2");
        Assert.True(code == 0, err + output);
        Assert.Contains("GPT 4 layers", File.ReadAllText(Path.Combine(gpt, "report.md")));
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(gpt, "summary.json")));
        Assert.All(doc.RootElement.GetProperty("runs").EnumerateArray(), r => Assert.InRange(r.GetProperty("test_accuracy").GetDouble(), 0, 1));
    }

    [Fact]
    public void Caeo_with_kfac_runs_on_resnet()
    {
        var data = LabFiles.FakeFashionMnist(train: 32, test: 16);
        var dir = Path.Combine(Scratch.NewDirectory(), "k");
        var (code, output, err) = LabCli.Run("compare", "--task", "resnet20-fmnist", "--data", data, "--out", dir,
            "--optimizers", "caeo", "--estimator", "kfac", "--seeds", "1", "--steps", "2", "--batch", "8", "--train", "32", "--probe-batch", "4", "--probe-every", "1");
        Assert.True(code == 0, err + output);
        var rows = File.ReadAllLines(Path.Combine(dir, "caeo", "seed0", "steps.csv")).Skip(1).Select(l => l.Split(',')).ToArray();
        Assert.All(rows, r => Assert.True(double.Parse(r[5], CultureInfo.InvariantCulture) > 0));
    }
}
