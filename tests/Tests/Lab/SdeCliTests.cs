using System.Globalization;
using System.Text.Json;
using Curvature.Lab;

namespace Curvature.Tests.Lab;

/// <summary>The sde verb on synthetic images: its variants, their equal times, the agreement it reports and its refusals.</summary>
[Collection(ThreadSettings.Name)]
public class SdeCliTests
{
    [Fact]
    public void Runs_sgd_svag_and_gaussian_sgd_to_the_same_time_and_compares_them_with_the_largest_l()
    {
        var data = LabFiles.FakeFashionMnist();
        var outDir = Path.Combine(Scratch.NewDirectory(), "sde");
        var (code, output, err) = LabCli.Run("sde", "--data", data, "--out", outDir, "--train", "48", "--batch", "8", "--steps", "12", "--eval-every", "4",
            "--ls", "1,2,4", "--width", "8", "--lr", "0.05", "--seeds", "2");
        Assert.True(code == 0, err + output);
        var rows = File.ReadAllLines(Path.Combine(outDir, "curves.csv")).Skip(1).Select(l => l.Split(',')).ToArray();
        Assert.Equal(new[] { "sgd", "svag l=2", "svag l=4", "gaussian" }, rows.Select(r => r[0]).Distinct());
        // Each variant and seed is evaluated at t = 0 and at η·t = 0.2, 0.4, 0.6: SVAG with l takes l times the steps at η/l.
        foreach (var run in rows.GroupBy(r => (r[0], r[2])))
        {
            int l = int.Parse(run.First()[1], CultureInfo.InvariantCulture);
            Assert.Equal(new[] { 0, 4 * l, 8 * l, 12 * l }, run.Select(r => int.Parse(r[3], CultureInfo.InvariantCulture)));
            Assert.Equal(new[] { 0, 0.2, 0.4, 0.6 }, run.Select(r => Math.Round(double.Parse(r[4], CultureInfo.InvariantCulture), 9)));
        }
        Assert.Equal(new[] { "0", "1" }, rows.Select(r => r[2]).Distinct());
        foreach (var seed in new[] { "0", "1" })                                     // one start per seed for every variant
            Assert.Single(rows.Where(r => r[2] == seed && r[3] == "0").Select(r => r[5]).Distinct());
        Assert.Matches(@"sgd against svag l=4: second-half training loss [0-9.]+% apart, paired p = [0-9.]+, test accuracy [0-9.]+ points, paired p = [0-9.]+: (they agree|they differ|inconclusive)", output);
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "summary.json")));
        var agreement = doc.RootElement.GetProperty("agreement").EnumerateArray().ToArray();
        Assert.Equal(new[] { "sgd", "svag l=2", "gaussian" }, agreement.Select(a => a.GetProperty("variant").GetString()));
        Assert.All(agreement, a => Assert.Equal("svag l=4", a.GetProperty("reference").GetString()));
        Assert.All(agreement, a => Assert.Contains(a.GetProperty("verdict").GetString(), new[] { "agree", "differ", "inconclusive" }));
        Assert.All(agreement, a => Assert.InRange(a.GetProperty("train_loss_p").GetDouble(), 0, 1));
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, File.ReadAllBytes(Path.Combine(outDir, "sde.png"))[..4]);
    }

    [Theory]
    [InlineData("--ls", "1,0", "--ls: '0' is not an amplification")]
    [InlineData("--ls", "2,x", "--ls: 'x' is not an amplification")]
    [InlineData("--batch", "64", "--batch 64 is larger than the 48 training images")]
    [InlineData("--eval-every", "50", "--eval-every 50 is more than the 12 steps")]
    public void Bad_settings_exit_2_naming_the_option(string option, string value, string message)
    {
        var data = LabFiles.FakeFashionMnist();
        var outDir = Path.Combine(Scratch.NewDirectory(), "never");
        var (code, _, err) = LabCli.Run("sde", "--data", data, "--out", outDir, "--train", "48", "--steps", "12", option, value);
        Assert.Equal(2, code);
        Assert.Contains(message, err);
        Assert.False(Directory.Exists(outDir));
    }

    private static Sde.Run Made(string variant, int l, ulong seed, double loss, double accuracy) =>
        new(variant, l, seed, 0.1 / l, 10 * l, [new(0, 0, 2, 2, 0.1), new(5 * l, 0.5, loss, loss, accuracy), new(10 * l, 1, loss, loss, accuracy)], null, 1);

    [Fact]
    public void The_verdict_pairs_seeds_and_separates_agreement_a_difference_and_too_little_evidence()
    {
        var s = new Sde.Settings("mlp-fmnist", 0.1, 8, 10, [1, 8], false, 48, 5, 0, "", "", 8, "tanh", "ce", 0.1, Seeds: 3);
        // SGD 2% above SVAG on every seed with seed-to-seed spread: a consistent but small gap.
        var close = new[] { 0.50, 0.60, 0.55 };
        var runs = close.SelectMany((v, i) => new[] { Made("sgd", 1, (ulong)i, v * 1.02 + 0.001 * i, 0.8), Made("svag l=8", 8, (ulong)i, v, 0.8) }).ToList();
        var a = Assert.Single(Sde.Compare(runs, s));
        Assert.Equal(("sgd", "svag l=8"), (a.Variant, a.Reference));
        Assert.Equal(0.02, a.TrainLossGap, 0.005);
        Assert.Equal("differ", a.Verdict);                 // paired: the 2% gap is the same on every seed, so it is significant
        // Differences of either sign and a mean gap (17%) beyond the tolerance that three seeds cannot call significant: inconclusive.
        var noisy = new[] { (0.5, 0.8), (0.5, 0.35), (0.5, 0.6) };
        runs = noisy.SelectMany((v, i) => new[] { Made("sgd", 1, (ulong)i, v.Item2, 0.8), Made("svag l=8", 8, (ulong)i, v.Item1, 0.8) }).ToList();
        Assert.Equal("inconclusive", Assert.Single(Sde.Compare(runs, s)).Verdict);
        // Differences within the tolerance and without a consistent sign: agreement.
        var same = new[] { (0.5, 0.51), (0.5, 0.49), (0.6, 0.605) };
        runs = same.SelectMany((v, i) => new[] { Made("sgd", 1, (ulong)i, v.Item2, 0.8), Made("svag l=8", 8, (ulong)i, v.Item1, 0.8) }).ToList();
        Assert.Equal("agree", Assert.Single(Sde.Compare(runs, s)).Verdict);
    }
}
