using System.Globalization;
using System.Text.Json;

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
            "--ls", "1,2,4", "--width", "8", "--lr", "0.05");
        Assert.True(code == 0, err + output);
        var rows = File.ReadAllLines(Path.Combine(outDir, "curves.csv")).Skip(1).Select(l => l.Split(',')).ToArray();
        Assert.Equal(new[] { "sgd", "svag l=2", "svag l=4", "gaussian" }, rows.Select(r => r[0]).Distinct());
        // Each variant is evaluated at t = 0 and at η·t = 0.2, 0.4, 0.6: SVAG with l takes l times the steps at η/l.
        foreach (var variant in rows.GroupBy(r => r[0]))
        {
            int l = int.Parse(variant.First()[1], CultureInfo.InvariantCulture);
            Assert.Equal(new[] { 0, 4 * l, 8 * l, 12 * l }, variant.Select(r => int.Parse(r[2], CultureInfo.InvariantCulture)));
            Assert.Equal(new[] { 0, 0.2, 0.4, 0.6 }, variant.Select(r => Math.Round(double.Parse(r[3], CultureInfo.InvariantCulture), 9)));
        }
        Assert.Single(rows.Select(r => r[4]).Where((_, i) => rows[i][2] == "0").Distinct());   // one start for all
        Assert.Contains("sgd against svag l=4: training loss within", output);
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "summary.json")));
        var agreement = doc.RootElement.GetProperty("agreement").EnumerateArray().ToArray();
        Assert.Equal(new[] { "sgd", "svag l=2", "gaussian" }, agreement.Select(a => a.GetProperty("variant").GetString()));
        Assert.All(agreement, a => Assert.Equal("svag l=4", a.GetProperty("reference").GetString()));
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
}
