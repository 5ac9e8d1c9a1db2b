using Curvature.Kernels;
using Curvature.Kernels.Cpu;
using FsCheck;
using FsCheck.Fluent;

namespace Curvature.Tests.Kernels;

/// <summary>The packed GEMM against a plain triple loop, over sizes that hit every edge of the blocking.</summary>
[Collection(ThreadSettings.Name)]
public class GemmTests
{
    private static double[] Reference(bool ta, bool tb, int m, int n, int k, double[] a, double[] b)
    {
        var c = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double s = 0;
                for (int p = 0; p < k; p++) s += (ta ? a[p * m + i] : a[i * k + p]) * (tb ? b[j * k + p] : b[p * n + j]);
                c[i * n + j] = s;
            }
        return c;
    }

    private static double[] Random(System.Random r, int n) => Enumerable.Range(0, n).Select(_ => r.NextDouble() * 2 - 1).ToArray();

    [Fact]
    public void Float64_and_float32_products_match_the_triple_loop_for_all_transposes()
    {
        var sizes = Gen.Choose(1, 70);
        var cases = from m in sizes from n in sizes from k in Gen.Choose(1, 1100) /* up to three depth blocks of at most 512 */ from flags in Gen.Choose(0, 7) select (m, n, k, flags);
        var prop = Prop.ForAll(cases.ToArbitrary(), t =>
            {
                var (m, n, k, flags) = t;
                bool ta = (flags & 1) != 0, tb = (flags & 2) != 0, acc = (flags & 4) != 0;
                var r = new System.Random(m * 7919 + n * 131 + k);
                var a = Random(r, m * k); var b = Random(r, k * n); var c0 = Random(r, m * n);
                var expected = Reference(ta, tb, m, n, k, a, b);
                if (acc) for (int i = 0; i < expected.Length; i++) expected[i] += c0[i];

                var c = (double[])c0.Clone();
                Gemm.Multiply<double>(ta, tb, m, n, k, a, ta ? m : k, b, tb ? k : n, c, n, acc);
                for (int i = 0; i < c.Length; i++) Assert.True(Math.Abs(c[i] - expected[i]) < 1e-12 * k + 1e-13, $"f64 {m}×{n}×{k} ta={ta} tb={tb}: [{i}] {c[i]} vs {expected[i]}");

                var cf = c0.Select(x => (float)x).ToArray();
                Gemm.Multiply<float>(ta, tb, m, n, k, a.Select(x => (float)x).ToArray(), ta ? m : k, b.Select(x => (float)x).ToArray(), tb ? k : n, cf, n, acc);
                for (int i = 0; i < cf.Length; i++) Assert.True(Math.Abs(cf[i] - expected[i]) < 2e-6 * k + 1e-5, $"f32 {m}×{n}×{k}: [{i}] {cf[i]} vs {expected[i]}");
            });
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(40), prop);
    }

    [Fact]
    public void Large_product_is_bitwise_identical_on_one_and_two_threads()
    {
        int m = 301, n = 257, k = 530;
        var r = new System.Random(1);
        var a = Random(r, m * k).Select(x => (float)x).ToArray();
        var b = Random(r, k * n).Select(x => (float)x).ToArray();
        float[] Run(int threads)
        {
            int saved = Parallelism.MaxThreads;
            Parallelism.MaxThreads = threads;
            try { var c = new float[m * n]; Gemm.Multiply<float>(false, true, m, n, k, a, k, b, k, c, n, false); return c; }
            finally { Parallelism.MaxThreads = saved; }
        }
        Assert.Equal(Run(1), Run(2));
    }

    [Fact]
    public void Batched_product_equals_one_product_per_matrix()
    {
        int batch = 3, m = 9, n = 40, k = 33;
        var r = new System.Random(2);
        var a = Random(r, batch * m * k); var b = Random(r, batch * k * n);
        var c = new double[batch * m * n];
        Gemm.MultiplyBatched<double>(batch, false, false, m, n, k, a, k, m * k, b, n, k * n, c, n, m * n, false);
        for (int i = 0; i < batch; i++)
        {
            var expected = Reference(false, false, m, n, k, a[(i * m * k)..((i + 1) * m * k)], b[(i * k * n)..((i + 1) * k * n)]);
            for (int j = 0; j < expected.Length; j++) Assert.Equal(expected[j], c[i * m * n + j], 1e-12);
        }
    }
}
