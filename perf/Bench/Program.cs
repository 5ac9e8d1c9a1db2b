using BenchmarkDotNet.Running;
using Curvature.Bench;

// Quick tables (engine vs OpenBLAS in one run) or the BenchmarkDotNet suites.
if (args.Length >= 1 && args[0] is "gemm" or "mlp" or "lanczos")
{
    int repeats = args.Contains("--quick") ? 7 : 21;
    switch (args[0])
    {
        case "gemm": QuickTables.SquareGemm(repeats); break;
        case "mlp": QuickTables.Mlp(repeats); break;
        default: QuickTables.Lanczos(repeats); break;
    }
    return 0;
}
BenchmarkSwitcher.FromAssembly(typeof(QuickTables).Assembly).Run(args);
return 0;
