using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Curvature.Models;
using Curvature.Tests.Lab;

namespace Curvature.Tests.Samples;

/// <summary>The sample runs (CI builds and runs it here, as a user would) and the README's program is its source, word for word.</summary>
public class QuickStartTests
{
    private static string RepositoryFile(string relative)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Engine.sln"))) return Path.Combine(dir.FullName, relative);
        throw new FileNotFoundException("the repository root (Engine.sln) is not above the test binaries.");
    }

    [Fact]
    public void The_sample_trains_measures_curvature_and_round_trips_its_weights()
    {
        var data = LabFiles.FakeFashionMnist(train: 512, test: 8);
        var weights = Path.Combine(Scratch.NewDirectory(), "mlp.safetensors");
        var info = new ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, "QuickStart")) { RedirectStandardOutput = true, RedirectStandardError = true };
        info.ArgumentList.Add(data);
        info.ArgumentList.Add(weights);
        using var p = Process.Start(info)!;
        string output = p.StandardOutput.ReadToEnd(), err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, err + output);
        double Number(string pattern) => double.Parse(Regex.Match(output, pattern).Groups[1].Value, CultureInfo.InvariantCulture);
        Assert.True(Number(@"step 15: loss ([\d.]+)") < Number(@"step 0: loss ([\d.]+)"), output);
        double along = Number(@"curvature along the gradient (-?[\d.]+)"), top = Number(@"lambda_max (-?[\d.]+)");
        // The Rayleigh quotient along any direction is at most λmax.
        Assert.True(top > 0 && along <= top * 1.01, output);
        Assert.Contains("199,210 parameters saved to", output);
        Assert.Equal(new[] { "1.bias", "1.weight", "3.bias", "3.weight", "5.bias", "5.weight" }, Safetensors.Read(weights).ByName().Keys.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void The_readme_program_is_the_samples_source()
    {
        var source = File.ReadAllText(RepositoryFile("samples/QuickStart/Program.cs")).Replace("\r\n", "\n", StringComparison.Ordinal);
        var readme = File.ReadAllText(RepositoryFile("README.md")).Replace("\r\n", "\n", StringComparison.Ordinal);
        Assert.Contains("```csharp\n" + source + "```", readme);
    }
}
