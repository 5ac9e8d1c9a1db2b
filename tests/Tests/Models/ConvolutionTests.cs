using Curvature.Autodiff;
using Curvature.Engine;
using Curvature.Models;
using Curvature.Models.Layers;

namespace Curvature.Tests.Models;

/// <summary>Conv2d in PyTorch's layout: a hand-computed example, stride and padding, adjointness, exact derivatives.</summary>
[Collection(ThreadSettings.Name)]
public class ConvolutionTests
{
    [Fact]
    public void A_2x2_convolution_matches_a_hand_computation()
    {
        // x: one 3×3 image 1..9; w: one 2×2 kernel [[1, 0], [0, -1]] → y[i, j] = x[i, j] − x[i+1, j+1] = −4 everywhere.
        var x = NdArray.FromArray(Enumerable.Range(1, 9).Select(v => (double)v).ToArray(), new Shape(1, 1, 3, 3));
        var w = NdArray.FromArray(new double[] { 1, 0, 0, -1 }, new Shape(1, 1, 2, 2));
        var y = ((Tensor)x).Conv2d(w);
        Assert.Equal(new Shape(1, 1, 2, 2), y.Shape);
        Assert.Equal(new double[] { -4, -4, -4, -4 }, y.ToArray<double>());
        // Two output channels and two input channels: channel 1 of w sums the second input channel's 2×2 patch.
        var x2 = NdArray.Concat([x, x * 10.0], 1);
        var w2 = NdArray.FromArray(new double[] { 1, 0, 0, -1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1 }, new Shape(2, 2, 2, 2));
        var y2 = ((Tensor)x2).Conv2d(w2).ToArray<double>();
        Assert.Equal(new double[] { -4, -4, -4, -4, 120, 160, 240, 280 }, y2);
    }

    [Fact]
    public void Stride_and_padding_match_a_direct_loop()
    {
        var rng = new RandomGenerator(1);
        int n = 2, c = 3, h = 7, wd = 6, o = 4, k = 3, stride = 2, pad = 1;
        var x = rng.Normal(new Shape(n, c, h, wd), dtype: DType.Float64);
        var w = rng.Normal(new Shape(o, c, k, k), dtype: DType.Float64);
        var y = ((Tensor)x).Conv2d(w, stride, pad).ToArray<double>();
        int oh = (h + 2 * pad - k) / stride + 1, ow = (wd + 2 * pad - k) / stride + 1;
        var xs = x.ToArray<double>(); var ws = w.ToArray<double>();
        for (int b = 0; b < n; b++)
            for (int oc = 0; oc < o; oc++)
                for (int i = 0; i < oh; i++)
                    for (int j = 0; j < ow; j++)
                    {
                        double s = 0;
                        for (int ic = 0; ic < c; ic++)
                            for (int ki = 0; ki < k; ki++)
                                for (int kj = 0; kj < k; kj++)
                                {
                                    int yy = i * stride - pad + ki, xx = j * stride - pad + kj;
                                    if (yy >= 0 && yy < h && xx >= 0 && xx < wd) s += xs[((b * c + ic) * h + yy) * wd + xx] * ws[((oc * c + ic) * k + ki) * k + kj];
                                }
                        Assert.Equal(s, y[((b * o + oc) * oh + i) * ow + j], 1e-12);
                    }
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(2, 1)]
    [InlineData(2, 0)]
    public void Implicit_gemm_kernels_match_im2col_and_a_matrix_product(int stride, int pad)
    {
        // Ten images (two chunks of the weight gradient's sum), K = 40·9 = 360 (two depth blocks), rows of 9
        // outputs (panels straddle output rows).
        var rng = new RandomGenerator(7);
        var x = rng.Normal(new Shape(10, 40, 9, 9), dtype: DType.Float64);
        var w = rng.Normal(new Shape(9, 40, 3, 3), dtype: DType.Float64);
        var g = x.ConvolutionWith(w.Shape, stride, pad);
        var cols = x.Im2Col(3, 3, stride, pad);                                               // [K, N·Q]
        var reference = w.Reshape(9, -1).MatMul(cols).Reshape(9, 10, g.OH, g.OW).Permute(1, 0, 2, 3);
        GradCheck.AssertClose(x.Conv2d(w, stride, pad), reference, 1e-12, 1e-12, "forward");
        var gy = rng.Normal(reference.Shape, dtype: DType.Float64);
        var gyRows = gy.Permute(1, 0, 2, 3).Reshape(9, -1);                                   // [O, N·Q]
        GradCheck.AssertClose(x.Conv2dWeightGradient(gy, g), gyRows.MatMul(cols, transB: true).Reshape(w.Shape), 1e-12, 1e-12, "weight gradient");
        var inputGrad = w.Reshape(9, -1).MatMul(gyRows, transA: true).Col2Im(40, 9, 9, 3, 3, stride, pad);
        GradCheck.AssertClose(gy.Conv2dInputGradient(w, g), inputGrad, 1e-12, 1e-12, "input gradient");
    }

    [Fact]
    public void Convolution_kernels_give_the_same_bits_on_one_and_two_threads()
    {
        var rng = new RandomGenerator(8);
        var x = rng.Normal(new Shape(19, 8, 10, 10));
        var w = rng.Normal(new Shape(16, 8, 3, 3));
        var g = x.ConvolutionWith(w.Shape, 1, 1);
        var gy = rng.Normal(new Shape(19, 16, 10, 10));
        (float[], float[], float[]) Run(int threads)
        {
            int saved = Curvature.Kernels.Parallelism.MaxThreads;
            Curvature.Kernels.Parallelism.MaxThreads = threads;
            try { return (x.Conv2d(w, 1, 1).ToArray<float>(), x.Conv2dWeightGradient(gy, g).ToArray<float>(), gy.Conv2dInputGradient(w, g).ToArray<float>()); }
            finally { Curvature.Kernels.Parallelism.MaxThreads = saved; }
        }
        var (one, two) = (Run(1), Run(2));
        Assert.Equal(one.Item1, two.Item1);
        Assert.Equal(one.Item2, two.Item2);
        Assert.Equal(one.Item3, two.Item3);
    }

    [Fact]
    public void Col2im_is_the_adjoint_of_im2col()
    {
        var rng = new RandomGenerator(2);
        var x = rng.Normal(new Shape(2, 3, 5, 6), dtype: DType.Float64);
        var cols = x.Im2Col(3, 2, 2, 1);
        var c = rng.Normal(cols.Shape, dtype: DType.Float64);
        Assert.Equal(cols.Dot(c), x.Dot(c.Col2Im(3, 5, 6, 3, 2, 2, 1)), 1e-10);
    }

    [Fact]
    public void Conv2d_derivatives_are_exact_to_second_order_in_input_and_weight()
    {
        var rng = new RandomGenerator(3);
        var conv = new Conv2d(2, 3, 3, rng, stride: 2, padding: 1, dtype: DType.Float64);
        var ps = conv.Parameters();
        GradCheck.Check(a => conv.Forward(new Bindings(ps, [a[1], a[2]], true), a[0]).Tanh(),
            [rng.Normal(new Shape(2, 2, 5, 5), dtype: DType.Float64), conv.Weight.Data, conv.Bias!.Data], order: 2, seed: 5, name: "conv2d");
        Assert.Equal(new[] { "weight", "bias" }, conv.NamedParameters().Select(p => p.Name));
    }
}
