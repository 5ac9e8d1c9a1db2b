using BenchmarkDotNet.Running;
using Curvature.Bench;

// Quick tables (engine vs OpenBLAS in one run) or the BenchmarkDotNet suites.
if (args.Length >= 1 && args[0] is "gemm" or "mlp" or "lanczos" or "models" or "conv" or "elementwise" or "batchnorm")
{
    int repeats = args.Contains("--quick") ? 7 : 21;
    switch (args[0])
    {
        case "gemm" when args.Contains("--resnet"): QuickTables.ResNetGemm(repeats); break;
        case "gemm": QuickTables.SquareGemm(repeats); break;
        case "mlp": QuickTables.Mlp(repeats); break;
        case "conv": QuickTables.Convolutions(repeats); break;
        case "elementwise": QuickTables.ElementWiseOps(repeats); break;
        case "batchnorm": QuickTables.BatchNormLayer(repeats); break;
        case "models":
            int at = Array.IndexOf(args, "--only");
            string? only = at >= 0 && at + 1 < args.Length ? args[at + 1] : null;
            if (args.Contains("--profile")) ModelTables.Profile(only);
            else ModelTables.Run(args.Contains("--quick") ? 3 : 7, only, trainOnly: args.Contains("--train-only"));
            break;
        default: QuickTables.Lanczos(repeats); break;
    }
    return 0;
}
BenchmarkSwitcher.FromAssembly(typeof(QuickTables).Assembly).Run(args);
return 0;
