using System.Runtime.Intrinsics;
using Curvature.Kernels;
using Curvature.Kernels.Cpu;
using FsCheck;
using FsCheck.Fluent;

namespace Curvature.Tests.Kernels;

/// <summary>
/// The direct (padded-grid) convolution kernels against the implicit-GEMM ones, over geometries that hit every edge:
/// strides 1 and 2, channel counts off the 8-row panels and the 16-lane vectors, widths whose padded rows straddle
/// panels, kernels from 1×1 to 5×3, padding 0 to KH − 1, more images than one weight-gradient chunk, small images
/// several to a grid with a last group short of images.
/// </summary>
[Collection(ThreadSettings.Name)]
public class DirectConvolutionTests
{
    private static double[] Random(System.Random r, long n) => Enumerable.Range(0, (int)n).Select(_ => r.NextDouble() * 2 - 1).ToArray();

    [Fact]
    public void Direct_kernels_match_implicit_gemm_in_float64_and_float32()
    {
        if (!Vector512.IsHardwareAccelerated) return; // the direct kernels need AVX-512; Convolution falls back elsewhere
        var cases = from n in Gen.Choose(1, 11) from c in Gen.Choose(1, 20) from o in Gen.Choose(1, 40)
                    from h in Gen.Choose(1, 12) from w in Gen.Choose(1, 35) from kh in Gen.Choose(1, 5) from kw in Gen.Choose(1, 3)
                    from pad in Gen.Choose(0, 4) from stride in Gen.Choose(1, 2)
                    select new ConvolutionGeometry(n, c, h + kh, w + kw, o, kh, kw, stride, Math.Min(pad, Math.Min(kh, kw) - 1));
        var prop = Prop.ForAll(cases.ToArbitrary(), g =>
        {
            Assert.True(DirectConvolution.Supports(g));
            var r = new System.Random(g.GetHashCode());
            var x = Random(r, (long)g.N * g.C * g.H * g.W);
            var w = Random(r, (long)g.O * g.K);
            var gy = Random(r, (long)g.N * g.O * g.Q);
            Compare(g, x, w, gy, 1e-12);
            Compare(g, x.Select(v => (float)v).ToArray(), w.Select(v => (float)v).ToArray(), gy.Select(v => (float)v).ToArray(), 1e-4f);
        });
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(80), prop);
    }

    [Theory]
    [InlineData(2, 3, 20, 33, 1, 1)] // two whole 16×16 transpose blocks of channels and a tail, one block of positions and a tail
    [InlineData(3, 16, 32, 16, 1, 1)] // ResNet-20's first stage: whole blocks only
    [InlineData(2, 5, 35, 48, 2, 1)] // stride 2: 17 positions per row
    public void Weight_gradient_transposes_whole_and_partial_blocks_exactly(int n, int c, int size, int o, int stride, int pad)
    {
        if (!Vector512.IsHardwareAccelerated) return;
        var g = new ConvolutionGeometry(n, c, size, size, o, 3, 3, stride, pad);
        var r = new System.Random(5);
        var x = Random(r, (long)g.N * g.C * g.H * g.W).Select(v => (float)v).ToArray();
        var gy = Random(r, (long)g.N * g.O * g.Q).Select(v => (float)v).ToArray();
        var (w0, w1) = (new float[g.O * g.K], new float[g.O * g.K]);
        Convolution.WeightGradientImplicitGemm<float>(x, gy, w0, g);
        DirectConvolution.WeightGradient<float>(x, gy, w1, g);
        AssertClose(w0, w1, 1e-4f * g.N, $"weight gradient {g}");
    }

    [Theory]
    [InlineData(7, 64, 8, 8, 64, 1)] // four 8×8 images per grid: one whole group and one of three
    [InlineData(5, 6, 8, 8, 10, 1)] // channels off the panels
    [InlineData(3, 32, 16, 16, 32, 1)] // two 16×16 images per grid: one group and a lone image
    [InlineData(1, 3, 8, 5, 9, 1)] // one image where a grid holds more
    [InlineData(7, 32, 16, 16, 64, 2)] // stride 2 to 8×8: four images' phase rows side by side
    [InlineData(3, 16, 32, 32, 32, 2)] // stride 2 to 16×16: two per grid, then a lone image
    [InlineData(5, 5, 13, 11, 9, 2)] // odd sizes: phase rows of unequal lengths
    public void Small_images_sharing_one_grid_match_implicit_gemm(int n, int c, int h, int w, int o, int stride)
    {
        if (!Vector512.IsHardwareAccelerated) return;
        var g = new ConvolutionGeometry(n, c, h, w, o, 3, 3, stride, 1);
        var r = new System.Random(11);
        var x = Random(r, (long)g.N * g.C * g.H * g.W);
        var wt = Random(r, (long)g.O * g.K);
        var gy = Random(r, (long)g.N * g.O * g.Q);
        Compare(g, x, wt, gy, 1e-12);
        Compare(g, x.Select(v => (float)v).ToArray(), wt.Select(v => (float)v).ToArray(), gy.Select(v => (float)v).ToArray(), 1e-4f);
    }

    private static void Compare<T>(ConvolutionGeometry g, T[] x, T[] w, T[] gy, T tolerance) where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        var (y0, y1) = (new T[g.N * g.O * g.Q], new T[g.N * g.O * g.Q]);
        Convolution.ForwardImplicitGemm<T>(x, w, y0, g);
        DirectConvolution.Forward<T>(x, w, y1, g);
        AssertClose(y0, y1, tolerance, $"forward {g}");
        // Accumulating onto a result adds the same product again: 2·y on both paths.
        var twice = y0.Select(v => v + v).ToArray();
        var (y2, y3) = (y0.ToArray(), y1.ToArray());
        Convolution.ForwardImplicitGemm<T>(x, w, y2, g, accumulate: true);
        DirectConvolution.Forward<T>(x, w, y3, g, accumulate: true);
        AssertClose(twice, y2, tolerance, $"accumulated implicit forward {g}");
        AssertClose(twice, y3, tolerance, $"accumulated direct forward {g}");
        var (x0, x1) = (new T[x.Length], new T[x.Length]);
        Convolution.InputGradientImplicitGemm<T>(gy, w, x0, g);
        var x2 = x0.ToArray();
        Convolution.InputGradientImplicitGemm<T>(gy, w, x2, g, accumulate: true);
        AssertClose(x0.Select(v => v + v).ToArray(), x2, tolerance, $"accumulated implicit input gradient {g}");
        if (DirectConvolution.Supports(g))
        {
            DirectConvolution.InputGradient<T>(gy, w, x1, g);
            AssertClose(x0, x1, tolerance, $"input gradient {g}");
            DirectConvolution.InputGradient<T>(gy, w, x1, g, accumulate: true);
            AssertClose(x0.Select(v => v + v).ToArray(), x1, tolerance, $"accumulated direct input gradient {g}");
        }
        // Pairs (a JVP's two terms) in one correlation: the sum of the two implicit-GEMM results.
        var (xb, wb, gyb) = (x.Select(v => v * T.CreateChecked(0.5) - T.One).ToArray(), w.Reverse().ToArray(), gy.Reverse().ToArray());
        var (yPair, ySecond) = (new T[y0.Length], new T[y0.Length]);
        DirectConvolution.ForwardPair<T>(x, w, xb, wb, yPair, g);
        Convolution.ForwardImplicitGemm<T>(xb, wb, ySecond, g);
        AssertClose(y0.Zip(ySecond, (a, b) => a + b).ToArray(), yPair, tolerance, $"forward pair {g}");
        var (xPair, xSecond) = (new T[x.Length], new T[x.Length]);
        DirectConvolution.InputGradientPair<T>(gy, w, gyb, wb, xPair, g);
        Convolution.InputGradientImplicitGemm<T>(gyb, wb, xSecond, g);
        AssertClose(x0.Zip(xSecond, (a, b) => a + b).ToArray(), xPair, tolerance, $"input gradient pair {g}");
        var (w0, w1) = (new T[w.Length], new T[w.Length]);
        Convolution.WeightGradientImplicitGemm<T>(x, gy, w0, g);
        DirectConvolution.WeightGradient<T>(x, gy, w1, g);
        AssertClose(w0, w1, tolerance * T.CreateChecked(g.N), $"weight gradient {g}");
    }

    private static void AssertClose<T>(T[] expected, T[] actual, T tolerance, string what) where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        for (int i = 0; i < expected.Length; i++)
            Assert.True(T.Abs(expected[i] - actual[i]) <= tolerance * (T.One + T.Abs(expected[i])), $"{what}: [{i}] {actual[i]} vs {expected[i]}");
    }

    [Fact]
    public void Direct_kernels_give_the_same_bits_on_one_and_two_threads()
    {
        if (!Vector512.IsHardwareAccelerated) return;
        var g = new ConvolutionGeometry(19, 8, 10, 10, 24, 3, 3, 1, 1);
        var strided = new ConvolutionGeometry(19, 8, 11, 10, 24, 3, 3, 2, 1);
        var r = new System.Random(3);
        var x = Random(r, (long)g.N * g.C * g.H * g.W).Select(v => (float)v).ToArray();
        var w = Random(r, (long)g.O * g.K).Select(v => (float)v).ToArray();
        var gy = Random(r, (long)g.N * g.O * g.Q).Select(v => (float)v).ToArray();
        (float[], float[], float[]) Run(int threads)
        {
            int saved = Parallelism.MaxThreads;
            Parallelism.MaxThreads = threads;
            try
            {
                var (y, xb, wb) = (new float[gy.Length], new float[x.Length], new float[w.Length]);
                DirectConvolution.Forward<float>(x, w, y, g);
                DirectConvolution.InputGradient<float>(gy, w, xb, g);
                DirectConvolution.WeightGradient<float>(x, gy, wb, g);
                return (y, xb, wb);
            }
            finally { Parallelism.MaxThreads = saved; }
        }
        var (one, two) = (Run(1), Run(2));
        Assert.Equal(one.Item1, two.Item1);
        Assert.Equal(one.Item2, two.Item2);
        Assert.Equal(one.Item3, two.Item3);
        (float[], float[], float[]) RunStrided(int threads)
        {
            int saved = Parallelism.MaxThreads;
            Parallelism.MaxThreads = threads;
            try
            {
                var (y, wb) = (new float[strided.N * strided.O * strided.Q], new float[w.Length]);
                var xs = x.Concat(x.Take(strided.N * strided.C * strided.W)).ToArray();
                var gys = gy.Take(y.Length).ToArray();
                var xb = new float[xs.Length];
                DirectConvolution.Forward<float>(xs, w, y, strided);
                DirectConvolution.InputGradient<float>(gys, w, xb, strided);
                DirectConvolution.WeightGradient<float>(xs, gys, wb, strided);
                return (y, xb, wb);
            }
            finally { Parallelism.MaxThreads = saved; }
        }
        var (s1, s2) = (RunStrided(1), RunStrided(2));
        Assert.Equal(s1.Item1, s2.Item1);
        Assert.Equal(s1.Item2, s2.Item2);
        Assert.Equal(s1.Item3, s2.Item3);
    }

    [Fact]
    public void Stride_3_and_padding_past_the_kernel_are_refused()
    {
        var stride3 = new ConvolutionGeometry(1, 1, 8, 8, 1, 3, 3, 3, 1);
        Assert.False(DirectConvolution.Supports(stride3));
        Assert.False(DirectConvolution.Supports(new ConvolutionGeometry(1, 1, 8, 8, 1, 3, 3, 1, 3)));
        // Stride 2 is supported where the direct kernels run at all (they need AVX-512).
        Assert.Equal(System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated, DirectConvolution.Supports(new ConvolutionGeometry(1, 1, 8, 8, 1, 3, 3, 2, 1)));
        var ex = Assert.Throws<NotSupportedException>(() => DirectConvolution.InputGradient<float>(new float[9], new float[9], new float[64], stride3));
        Assert.Contains("got stride 3", ex.Message);
    }
}
