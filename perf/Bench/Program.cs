using System.Diagnostics;
using Curvature.Bench;
using Curvature.Kernels.Cpu;

if (args.Length > 0 && args[0] == "gemm")
{
    OpenBlas.TryLoad(out var why);
    Console.WriteLine($"# {why}");
    foreach (int n in new[] { 256, 512, 1024, 2048 })
    {
        var a = new float[n * n]; var b = new float[n * n]; var c = new float[n * n]; var c2 = new float[n * n];
        var r = new Random(1); for (int i = 0; i < a.Length; i++) { a[i] = (float)r.NextDouble(); b[i] = (float)r.NextDouble(); }
        double Time(Action f) { f(); var ts = new List<double>(); for (int i = 0; i < 7; i++) { var sw = Stopwatch.StartNew(); f(); ts.Add(sw.Elapsed.TotalSeconds); } ts.Sort(); return ts[3]; }
        double flops = 2.0 * n * n * n;
        double te = Time(() => Gemm.Multiply<float>(false, false, n, n, n, a, n, b, n, c, n, false));
        double to = Time(() => OpenBlas.Sgemm(n, n, n, a, b, c2));
        double err = 0; for (int i = 0; i < c.Length; i++) err = Math.Max(err, Math.Abs(c[i] - c2[i]) / Math.Abs(c2[i]));
        Console.WriteLine($"| {n} | {flops / te / 1e9:F1} | {flops / to / 1e9:F1} | {te / to:F2} | err {err:E1}");
    }
}
if (args.Length > 0 && args[0] == "gemm1")
{
    Curvature.Kernels.Parallelism.MaxThreads = int.Parse(args[1]);
    int n = int.Parse(args[2]);
    var a = new float[n * n]; var b = new float[n * n]; var c = new float[n * n];
    for (int rep = 0; rep < 5; rep++) { var sw = Stopwatch.StartNew(); Gemm.Multiply<float>(false, false, n, n, n, a, n, b, n, c, n, false); Console.WriteLine($"{args[1]} thread: {2.0 * n * n * n / sw.Elapsed.TotalSeconds / 1e9:F1} GFLOP/s"); }
}
