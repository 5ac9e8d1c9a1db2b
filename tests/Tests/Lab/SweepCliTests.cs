using System.Globalization;

namespace Curvature.Tests.Lab;

/// <summary>The sweep verb: presets over CAEO's δ, and one swept option at a time.</summary>
[Collection(ThreadSettings.Name)]
public class SweepCliTests
{
    [Fact]
    public void The_delta_preset_runs_three_variants_each_below_its_own_edge()
    {
        var data = LabFiles.FakeFashionMnist(train: 64, test: 16);
        var outDir = Path.Combine(Scratch.NewDirectory(), "sweep");
        var (code, output, err) = LabCli.Run("sweep", "--preset", "caeo-delta", "--data", data, "--out", outDir, "--seeds", "1", "--steps", "6",
            "--batch", "16", "--train", "48", "--val", "16", "--probe-batch", "16", "--probe-every", "2", "--window", "3");
        Assert.True(code == 0, err + output);
        var report = File.ReadAllText(Path.Combine(outDir, "report.md"));
        Assert.Contains("CAEO ablation over δ", report);
        foreach (var (label, dir, delta) in new[] { ("delta=0.1", "delta_0.1", 0.1), ("delta=0.5", "delta_0.5", 0.5), ("delta=1.0", "delta_1.0", 1.0) })
        {
            Assert.Contains($"| {label} |", report);
            var folder = Directory.GetDirectories(outDir).Single(d => d.EndsWith(dir, StringComparison.Ordinal));
            var rows = File.ReadAllLines(Path.Combine(folder, "seed0", "steps.csv")).Skip(1).Select(l => l.Split(',')).Where(f => f[6] != "").ToArray();
            Assert.NotEmpty(rows);
            Assert.All(rows, f => Assert.True(double.Parse(f[6], CultureInfo.InvariantCulture) <= 2 - delta + 1e-6, $"{label}: η·λ = {f[6]}"));
        }
    }

    [Fact]
    public void The_estimator_preset_compares_power_hutchinson_and_kfac()
    {
        var data = LabFiles.FakeFashionMnist(train: 64, test: 16);
        var outDir = Path.Combine(Scratch.NewDirectory(), "est");
        var (code, output, err) = LabCli.Run("sweep", "--preset", "caeo-estimator", "--data", data, "--out", outDir, "--seeds", "1", "--steps", "4",
            "--batch", "16", "--train", "48", "--val", "16", "--probe-batch", "16", "--probe-every", "2", "--window", "2");
        Assert.True(code == 0, err + output);
        var report = File.ReadAllText(Path.Combine(outDir, "report.md"));
        foreach (var e in new[] { "power", "hutchinson", "kfac" })
        {
            Assert.Contains($"| estimator={e} |", report);
            var rows = File.ReadAllLines(Path.Combine(outDir, $"estimator_{e}", "seed0", "steps.csv")).Skip(1).Select(l => l.Split(',')).Where(f => f[5] != "").ToArray();
            Assert.Equal(2, rows.Length);
            Assert.All(rows, f => Assert.True(double.Parse(f[6], CultureInfo.InvariantCulture) <= 1.5 + 1e-6));
        }
    }

    [Theory]
    [InlineData("--preset", "caeo-delta", "--grid", "lr=0.1,0.5")]
    [InlineData("--optimizer", "adamw", "--grid", "mu=0.9")]
    [InlineData("--optimizer", "adamw", "--grid", "lr=0.1,fast")]
    [InlineData("--optimizer", "adamw:lr=2", "--grid", "wd=0,0.1", "--grid", "wd=0.2")]
    [InlineData("--optimizer", "sgdd", "--grid", "lr=0.1")]
    [InlineData("--optimizer", "sgd")]
    [InlineData("--estimator", "power,gauss")]
    [InlineData("--optimizer", "dcao", "--delta", "0.5")]
    [InlineData("--alpha", "0.1,1")]
    [InlineData("--preset", "caeo-lr")]
    [InlineData("--delta", "0.5,2.5")]
    public void Bad_combinations_exit_with_code_2(params string[] args)
    {
        var outDir = Path.Combine(Scratch.NewDirectory(), "never-swept");
        var (code, output, err) = LabCli.Run(["sweep", .. args, "--out", outDir]);
        Assert.Equal(2, code);
        Assert.False(string.IsNullOrWhiteSpace(err + output));
        Assert.False(Directory.Exists(outDir));
    }
}
