using BenchmarkDotNet.Attributes;
using Curvature.Kernels.Cpu;

namespace Curvature.Bench;

/// <summary>Square SGEMM and DGEMM through the engine's packed kernel, C = A·B.</summary>
[MemoryDiagnoser]
public class GemmBenchmarks
{
    private float[] a32 = [], b32 = [], c32 = [];
    private double[] a64 = [], b64 = [], c64 = [];

    /// <summary>Matrix size n (n×n times n×n).</summary>
    [Params(256, 512, 1024, 2048)]
    public int N { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var r = new Random(1);
        a32 = new float[N * N]; b32 = new float[N * N]; c32 = new float[N * N];
        a64 = new double[N * N]; b64 = new double[N * N]; c64 = new double[N * N];
        for (int i = 0; i < N * N; i++)
        {
            a64[i] = r.NextDouble() - 0.5; b64[i] = r.NextDouble() - 0.5;
            a32[i] = (float)a64[i]; b32[i] = (float)b64[i];
        }
    }

    [Benchmark]
    public void Sgemm() => Gemm.Multiply<float>(false, false, N, N, N, a32, N, b32, N, c32, N, false);

    [Benchmark]
    public void Dgemm() => Gemm.Multiply<double>(false, false, N, N, N, a64, N, b64, N, c64, N, false);

    [Benchmark]
    public void SgemmTransposedB() => Gemm.Multiply<float>(false, true, N, N, N, a32, N, b32, N, c32, N, false);
}
