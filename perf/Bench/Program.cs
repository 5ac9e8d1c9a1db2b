using BenchmarkDotNet.Running;
using Curvature.Bench;

// Quick tables (engine vs OpenBLAS in one run) or the BenchmarkDotNet suites.
if (args.Length >= 1 && args[0] is "gemm" or "mlp")
{
    int repeats = args.Contains("--quick") ? 7 : 21;
    if (args[0] == "gemm") QuickTables.SquareGemm(repeats);
    else QuickTables.Mlp(repeats);
    return 0;
}
BenchmarkSwitcher.FromAssembly(typeof(QuickTables).Assembly).Run(args);
return 0;
