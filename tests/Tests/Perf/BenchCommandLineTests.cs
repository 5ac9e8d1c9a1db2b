using System.Diagnostics;

namespace Curvature.Tests.Perf;

/// <summary>perf/Bench's command line: bad usage is one error, the verbs, and exit 2, before any timing.</summary>
public class BenchCommandLineTests
{
    private static (int Code, string Output, string Error) Bench(params string[] args)
    {
        var info = new ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, "Bench")) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) info.ArgumentList.Add(a);
        using var p = Process.Start(info)!;
        var output = p.StandardOutput.ReadToEndAsync();
        string error = p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, output.Result, error);
    }

    [Theory]
    [InlineData(new string[0], "no verb given")]
    [InlineData(new[] { "gem", "--quick" }, "unknown verb 'gem'")]
    [InlineData(new[] { "gemm", "--quik" }, "'--quik'")]
    [InlineData(new[] { "models", "--only", "nothing" }, "no model key starts with 'nothing'")]
    [InlineData(new[] { "models", "--only" }, "--only")]
    [InlineData(new[] { "mlp", "--quick", "extra" }, "'extra'")]
    [InlineData(new[] { "spectrum", "--batch", "0" }, "--batch: 0; expected at least 1 examples")]
    public void Bad_usage_names_the_problem_lists_the_verbs_and_exits_2(string[] args, string expected)
    {
        var (code, output, error) = Bench(args);
        Assert.True(code == 2, $"exit {code}\n{error}\n{output}");
        Assert.Contains(expected, error);
        Assert.Contains("verbs: gemm, mlp, lanczos, conv, elementwise, batchnorm, spectrum, noise, models, suites", error);
        Assert.DoesNotContain("GFLOP/s", output); // nothing was timed
    }

    [Fact]
    public void Help_lists_every_verb_and_exits_0()
    {
        var (code, output, error) = Bench("--help");
        Assert.True(code == 0, error);
        foreach (var verb in new[] { "gemm", "mlp", "lanczos", "conv", "elementwise", "batchnorm", "spectrum", "noise", "models", "suites" })
            Assert.Contains(verb, output);
    }
}
