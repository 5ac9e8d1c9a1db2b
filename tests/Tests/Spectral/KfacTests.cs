using Curvature.Autodiff;
using Curvature.Engine;
using Curvature.Models;
using Curvature.Models.Layers;
using Curvature.Spectral;
using Curvature.Kernels;

namespace Curvature.Tests.Spectral;

/// <summary>K-FAC factors against the explicit Fisher.</summary>
public class KfacTests
{
    private static Sequential OneLayer(RandomGenerator rng) => new(new Linear(3, 4, rng, dtype: DType.Float64));

    [Theory]
    [InlineData("ce")]
    [InlineData("mse")]
    public void For_one_example_of_a_one_layer_network_kfac_is_the_exact_fisher(string loss)
    {
        var rng = new RandomGenerator(3);
        var model = OneLayer(rng);
        var x = rng.Normal(new Shape(1, 3), dtype: DType.Float64);
        var kfac = KroneckerFactoredCurvature.Compute(model, loss, x, new RandomGenerator(5));
        // The explicit Fisher of one example: the outer product of the gradient of −log p(ŷ | x) for the sampled ŷ.
        var ps = model.Parameters();
        var grad = Derivatives.Grad(p =>
        {
            var o = model.Forward(new Bindings(ps, p, false), x);
            return loss == "ce" ? Losses.CrossEntropy(o, kfac.SampledTargets!) : Losses.MeanSquaredErrorTo(o, kfac.SampledTargets!);
        }, ps.Select(p => (Tensor)p.Value).ToArray());
        var g = Vectors.Flatten(grad.Select(t => t.Data).ToArray());
        for (int trial = 0; trial < 3; trial++)
        {
            var v = rng.Normal(new Shape((int)kfac.Dimension), dtype: DType.Float64);
            GradCheck.AssertClose(kfac.Apply(v), g * g.Dot(v), 1e-12, 1e-14, $"K-FAC vs explicit Fisher ({loss})");
        }
    }

    [Fact]
    public void Factors_are_the_second_moments_of_inputs_and_output_gradients()
    {
        var rng = new RandomGenerator(4);
        var model = OneLayer(rng);
        int n = 6;
        var x = rng.Normal(new Shape(n, 3), dtype: DType.Float64);
        var kfac = KroneckerFactoredCurvature.Compute(model, "ce", x, new RandomGenerator(6));
        var (a, gFactor) = kfac.Factors[0];
        var xs = x.ToArray<double>();
        var logits = model.Forward(Bindings.Constant(model, false), x).Data.ToArray<double>();
        var y = kfac.SampledTargets!.ToArray<long>();
        var expectedA = new double[16];
        var expectedG = new double[16];
        for (int i = 0; i < n; i++)
        {
            double[] at = [xs[i * 3], xs[i * 3 + 1], xs[i * 3 + 2], 1];
            double max = Enumerable.Range(0, 4).Max(j => logits[i * 4 + j]);
            double z = Enumerable.Range(0, 4).Sum(j => Math.Exp(logits[i * 4 + j] - max));
            var g = Enumerable.Range(0, 4).Select(j => Math.Exp(logits[i * 4 + j] - max) / z - (j == y[i] ? 1 : 0)).ToArray();
            for (int r = 0; r < 4; r++)
                for (int c = 0; c < 4; c++) { expectedA[r * 4 + c] += at[r] * at[c] / n; expectedG[r * 4 + c] += g[r] * g[c] / n; }
        }
        GradCheck.AssertClose(a, NdArray.FromArray(expectedA, new Shape(4, 4)), 1e-12, 1e-14, "A");
        GradCheck.AssertClose(gFactor, NdArray.FromArray(expectedG, new Shape(4, 4)), 1e-12, 1e-14, "G");
    }

    [Fact]
    public void Top_eigenvalue_is_the_largest_product_of_factor_eigenvalues()
    {
        var rng = new RandomGenerator(7);
        var model = Mlp.Create(rng, width: 4, inputs: 3, classes: 3, dtype: DType.Float64);
        var kfac = KroneckerFactoredCurvature.Compute(model, "ce", rng.Normal(new Shape(10, 3), dtype: DType.Float64), new RandomGenerator(8));
        var (values, _) = SymmetricEigen.Decompose(DenseMatrix.Of(kfac));
        Assert.Equal(values.Max(), kfac.TopEigenvalue(), 1e-8 * Math.Max(1, values.Max()));
    }

    [Fact]
    public void A_model_with_no_linear_or_convolution_layer_has_only_zero_blocks_and_no_top_eigenvalue()
    {
        var kfac = KroneckerFactoredCurvature.Compute(new Odd(), "ce", NdArray.Ones(new Shape(2, 3), DType.Float64), new RandomGenerator(1));
        Assert.Equal([0], kfac.Uncovered);
        Assert.Equal(new double[3], kfac.Apply(NdArray.Ones(new Shape(3), DType.Float64)).ToArray<double>());
        var e = Assert.Throws<NotSupportedException>(() => kfac.TopEigenvalue());
        Assert.Contains("no Linear or Conv2d layer", e.Message);
    }

    private sealed class Odd : Module
    {
        private readonly Parameter scale;
        public Odd() => scale = AddParameter("scale", NdArray.Ones(new Shape(3), DType.Float64));
        public override Tensor Forward(Bindings b, Tensor x) => x * b[scale];
    }

    [Fact]
    public void For_one_example_and_one_output_position_kfc_is_the_exact_fisher_of_a_convolution()
    {
        // A 3×3 kernel over a 3×3 input: one output position, so KFC's spatial assumptions hold exactly.
        var rng = new RandomGenerator(11);
        var model = new Sequential(new Conv2d(2, 4, 3, rng, dtype: DType.Float64), new Flatten());
        var x = rng.Normal(new Shape(1, 2, 3, 3), dtype: DType.Float64);
        var kfac = KroneckerFactoredCurvature.Compute(model, "ce", x, new RandomGenerator(5));
        Assert.Empty(kfac.Uncovered);
        var ps = model.Parameters();
        var grad = Derivatives.Grad(p => Losses.CrossEntropy(model.Forward(new Bindings(ps, p, false), x), kfac.SampledTargets!), ps.Select(p => (Tensor)p.Value).ToArray());
        var g = Vectors.Flatten(grad.Select(t => t.Data).ToArray());
        var v = rng.Normal(new Shape((int)kfac.Dimension), dtype: DType.Float64);
        GradCheck.AssertClose(kfac.Apply(v), g * g.Dot(v), 1e-12, 1e-14, "KFC vs explicit Fisher");
    }

    [Fact]
    public void Kfc_factors_sum_patches_over_positions_and_average_output_gradients()
    {
        var rng = new RandomGenerator(12);
        var conv = new Conv2d(2, 3, 2, rng, stride: 1, padding: 1, bias: false, dtype: DType.Float64);
        var model = new Sequential(conv, new Flatten());
        var x = rng.Normal(new Shape(2, 2, 3, 3), dtype: DType.Float64);
        var kfac = KroneckerFactoredCurvature.Compute(model, "ce", x, new RandomGenerator(6));
        var (a, gFactor) = kfac.Factors[0];
        var cols = x.Im2Col(2, 2, 1, 1);                                   // [8, 2·16]
        GradCheck.AssertClose(a, cols.MatMul(cols, transB: true) * 0.5, 1e-12, 1e-14, "A = Σ_t ã ãᵀ / N");
        // The logits are the flattened convolution output, so the per-position output gradients of the summed
        // sampled loss are softmax − onehot(ŷ), reshaped to [N, O, T]; G averages g gᵀ over the N·T positions.
        var logits = model.Forward(Bindings.Constant(model, false), x).Data;
        var residual = logits.LogSoftmax().Apply(Curvature.Kernels.UnaryOp.Exp) - NdArray.OneHot(kfac.SampledTargets!, logits.Shape[1], DType.Float64);
        var gRows = residual.Reshape(2, 3, 16).Permute(1, 0, 2).Reshape(3, 32);
        GradCheck.AssertClose(gFactor, gRows.MatMul(gRows, transB: true) * (1.0 / 32), 1e-12, 1e-14, "G = Σ_{n,t} g gᵀ / (N·T)");
    }

    [Fact]
    public void On_resnet_batchnorm_parameters_get_zero_blocks_and_the_rest_is_factored()
    {
        var rng = new RandomGenerator(13);
        var net = new ResNet(rng, inputChannels: 1, classes: 3, width: 2, blocksPerStage: 1, dtype: DType.Float64);
        var kfac = KroneckerFactoredCurvature.Compute(net, "ce", rng.Normal(new Shape(4, 1, 8, 8), dtype: DType.Float64), new RandomGenerator(7), training: true);
        var named = net.NamedParameters();
        var uncovered = kfac.Uncovered.Select(i => named[i].Name).ToArray();
        Assert.All(uncovered, name => Assert.Contains(".bn", "." + name.Replace("downsample.1", "bn", StringComparison.Ordinal)));
        Assert.Equal(named.Count(p => p.Name.Contains("bn", StringComparison.Ordinal) || p.Name.Contains("downsample.1", StringComparison.Ordinal)), uncovered.Length);
        var v = rng.Normal(new Shape((int)kfac.Dimension), dtype: DType.Float64);
        var parts = Vectors.Unflatten(kfac.Apply(v), net.Parameters().Select(p => p.Shape).ToArray());
        foreach (int i in kfac.Uncovered) Assert.All(parts[i].ToArray<double>(), e => Assert.Equal(0.0, e));
        double top = kfac.TopEigenvalue();
        Assert.True(top > 0 && double.IsFinite(top));
    }
}
