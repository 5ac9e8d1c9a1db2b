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
        }, ps.Select(p => (Tensor)p.Data).ToArray());
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
        Assert.Contains("no Linear, Conv2d, BatchNorm2d, LayerNorm or Embedding layer", e.Message);
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
        var grad = Derivatives.Grad(p => Losses.CrossEntropy(model.Forward(new Bindings(ps, p, false), x), kfac.SampledTargets!), ps.Select(p => (Tensor)p.Data).ToArray());
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
        var residual = logits.LogSoftmax().Apply(Curvature.Kernels.UnaryOp.Exp) - SoftmaxLossOps.OneHot(kfac.SampledTargets!, logits.Shape[1], DType.Float64);
        var gRows = residual.Reshape(2, 3, 16).Permute(1, 0, 2).Reshape(3, 32);
        GradCheck.AssertClose(gFactor, gRows.MatMul(gRows, transB: true) * (1.0 / 32), 1e-12, 1e-14, "G = Σ_{n,t} g gᵀ / (N·T)");
    }

    [Fact]
    public void On_resnet_every_parameter_has_a_block_and_the_top_eigenvalue_is_the_operators()
    {
        var rng = new RandomGenerator(13);
        var net = new ResNet(rng, inputChannels: 1, classes: 3, width: 2, blocksPerStage: 1, dtype: DType.Float64);
        var kfac = KroneckerFactoredCurvature.Compute(net, "ce", rng.Normal(new Shape(4, 1, 8, 8), dtype: DType.Float64), new RandomGenerator(7), training: true);
        Assert.Empty(kfac.Uncovered);
        Assert.Equal(net.NamedParameters().Count(p => p.Name.EndsWith("weight", StringComparison.Ordinal) && (p.Name.Contains("bn", StringComparison.Ordinal) || p.Name.Contains("downsample.1", StringComparison.Ordinal))),
            kfac.NormalizationBlocks.Count);
        // Block diagonal with no shared parameter: the operator's top eigenvalue (Lanczos to convergence) is the largest block's.
        var top = Lanczos.Run(kfac, 150, k: 1, tolerance: 1e-10, rng: new RandomGenerator(3)).Values[0];
        Assert.Equal(top, kfac.TopEigenvalue(), 1e-7 * top);
        for (int i = 0; i < 3; i++)
        {
            var v = rng.Normal(new Shape((int)kfac.Dimension), dtype: DType.Float64);
            Assert.True(v.Dot(kfac.Apply(v)) >= 0, "K-FAC is positive semidefinite");
        }
    }

    /// <summary>(1/N)·Σₙ gₙgₙᵀ from per-example gradients gₙ of −log p(ŷₙ | xₙ) at K-FAC's sampled targets, taken one example at a time.</summary>
    private static double[,] ExplicitFisher(Module model, NdArray x, KroneckerFactoredCurvature kfac, bool training)
    {
        var ps = model.Parameters();
        int n = x.Shape[0], dim = (int)kfac.Dimension;
        var f = new double[dim, dim];
        for (int i = 0; i < n; i++)
        {
            var pick = NdArray.FromArray(Enumerable.Range(0, n).Select(j => j == i ? 1.0 : 0.0).ToArray(), new Shape(n));
            var g = Vectors.Flatten(Derivatives.Grad(p =>
            {
                var o = model.Forward(new Bindings(ps, p, training), x);
                return (Loss.PerExample("ce", o, kfac.SampledTargets!) * pick).Sum();
            }, ps.Select(p => (Tensor)p.Data).ToArray()).Select(t => t.Data).ToArray()).ToArray<double>();
            for (int r = 0; r < dim; r++) for (int c = 0; c < dim; c++) f[r, c] += g[r] * g[c] / n;
        }
        return f;
    }

    private static int[] Offsets(Module model)
    {
        var sizes = model.Parameters().Select(p => (int)p.Shape.Size).ToArray();
        return sizes.Select((_, i) => sizes.Take(i).Sum()).ToArray();
    }

    private sealed class NormalizedLinear : Module
    {
        private readonly Module norm;
        private readonly Linear fc;
        public NormalizedLinear(bool batchNorm, RandomGenerator rng)
        {
            norm = batchNorm ? AddModule("bn", new BatchNorm2d(2, dtype: DType.Float64)) : AddModule("ln", new LayerNorm(6, dtype: DType.Float64));
            fc = AddModule("fc", new Linear(batchNorm ? 18 : 6, 4, rng, dtype: DType.Float64));
            // γ, β and the running statistics away from their initial 1, 0, 0, 1, so every term of the block counts.
            var ps = Parameters();
            ps[0].Data = rng.Normal(ps[0].Shape, 1, 0.5, DType.Float64);
            ps[1].Data = rng.Normal(ps[1].Shape, 0, 0.5, DType.Float64);
            if (norm is BatchNorm2d bn) (bn.RunningMean.Data, bn.RunningVar.Data) = (rng.Normal(new Shape(2), dtype: DType.Float64), rng.Uniform(new Shape(2), 0.5, 2, DType.Float64));
        }
        public override Tensor Forward(Bindings b, Tensor x) => fc.Forward(b, norm.Forward(b, x).Reshape(x.Shape[0], -1));
    }

    [Theory]
    [InlineData(true, false)]
    [InlineData(true, true)]
    [InlineData(false, false)]
    public void Normalization_blocks_are_the_exact_fisher_of_each_channels_scale_and_shift(bool batchNorm, bool training)
    {
        // BatchNorm in either mode (in training mode the statistics couple the examples, yet yₙ = γ·x̂ₙ + β still
        // reaches only ℓₙ, so the pair's per-example gradients are Σ gₙ·x̂ₙ and Σ gₙ exactly), and LayerNorm on rows.
        var rng = new RandomGenerator(21);
        var model = new NormalizedLinear(batchNorm, rng);
        var x = batchNorm ? rng.Normal(new Shape(5, 2, 3, 3), dtype: DType.Float64) : rng.Normal(new Shape(5, 6), dtype: DType.Float64);
        var kfac = KroneckerFactoredCurvature.Compute(model, "ce", x, new RandomGenerator(8), training: training);
        Assert.Empty(kfac.Uncovered);
        var f = ExplicitFisher(model, x, kfac, training);
        var (uu, uv, vv) = kfac.NormalizationBlocks[0];
        var o = Offsets(model);
        int channels = model.Parameters()[0].Shape[0];
        for (int c = 0; c < channels; c++)
        {
            int g = o[0] + c, b = o[1] + c;
            Assert.Equal(f[g, g], uu.ToArray<double>()[c], 1e-12);
            Assert.Equal(f[g, b], uv.ToArray<double>()[c], 1e-12);
            Assert.Equal(f[b, b], vv.ToArray<double>()[c], 1e-12);
        }
        // As an operator: a direction on (γ, β) alone maps to the per-channel blocks, nothing across channels or layers.
        var v = NdArray.FromArray(Enumerable.Range(0, (int)kfac.Dimension).Select(i => i < o[2] ? 0.3 + i : 0.0).ToArray(), new Shape((int)kfac.Dimension));
        var kv = kfac.Apply(v).ToArray<double>();
        var vs = v.ToArray<double>();
        for (int c = 0; c < channels; c++)
        {
            int g = o[0] + c, b = o[1] + c;
            Assert.Equal(f[g, g] * vs[g] + f[g, b] * vs[b], kv[g], 1e-12);
            Assert.Equal(f[g, b] * vs[g] + f[b, b] * vs[b], kv[b], 1e-12);
        }
        Assert.All(kv.Skip(o[2]), e => Assert.Equal(0.0, e));
    }

    [Fact]
    public void An_embedding_block_is_the_token_frequencies_times_the_output_gradient_moment_and_exact_for_one_token()
    {
        var rng = new RandomGenerator(31);
        var model = new Sequential(new Embedding(5, 3, rng, DType.Float64), new Linear(3, 4, rng, dtype: DType.Float64));
        foreach (var ids in new[] { new long[] { 0, 2, 2, 4, 2, 0 }, new long[] { 3, 3, 3, 3 } })
        {
            var x = NdArray.FromArray(ids);
            var kfac = KroneckerFactoredCurvature.Compute(model, "ce", x, new RandomGenerator(9));
            Assert.Empty(kfac.Uncovered);
            var f = ExplicitFisher(model, x, kfac, training: false);
            // Each example's wte gradient is its output gradient gₙ in row idₙ: G = (1/N)·Σ gₙgₙᵀ from the explicit ones.
            int n = ids.Length;
            var gm = new double[3, 3];
            var ps = model.Parameters();
            for (int i = 0; i < n; i++)
            {
                var pick = NdArray.FromArray(Enumerable.Range(0, n).Select(j => j == i ? 1.0 : 0.0).ToArray(), new Shape(n));
                var g = Derivatives.Grad(p => (Loss.PerExample("ce", model.Forward(new Bindings(ps, p, false), x), kfac.SampledTargets!) * pick).Sum(),
                    ps.Select(p => (Tensor)p.Data).ToArray())[0].Data.ToArray<double>();
                for (int r = 0; r < 3; r++) for (int c = 0; c < 3; c++) gm[r, c] += g[ids[i] * 3 + r] * g[ids[i] * 3 + c] / n;
            }
            var (freq, gFactor) = kfac.EmbeddingFactors[0];
            Assert.Equal(Enumerable.Range(0, 5).Select(t => ids.Count(i => i == t) / (double)n), freq.ToArray<double>());
            var gk = gFactor.ToArray<double>();
            for (int r = 0; r < 3; r++) for (int c = 0; c < 3; c++) Assert.Equal(gm[r, c], gk[r * 3 + c], 1e-12);
            if (ids.Distinct().Count() == 1)
            {
                // One token: f = 1 on its row, and diag(f) ⊗ G is the explicit Fisher of the table.
                var dense = DenseMatrix.Of(kfac);
                for (int r = 0; r < 15; r++) for (int c = 0; c < 15; c++) Assert.Equal(f[r, c], dense[r, c], 1e-12);
            }
        }
    }

    [Fact]
    public void On_a_gpt_every_parameter_is_covered_and_the_tied_table_gets_both_blocks()
    {
        var rng = new RandomGenerator(41);
        var gpt = new Gpt(new GptConfig(Vocabulary: 7, Context: 4, Layers: 1, Heads: 2, Width: 4), rng, DType.Float64);
        var ids = rng.Integers(new Shape(3, 4), 7);
        var kfac = KroneckerFactoredCurvature.Compute(gpt, "ce", ids, new RandomGenerator(5));
        Assert.Empty(kfac.Uncovered);
        Assert.Equal(2, kfac.EmbeddingFactors.Count);                          // wte and wpe
        Assert.Equal(3, kfac.NormalizationBlocks.Count);                       // ln_1, ln_2, ln_f
        // wpe's positions are looked up per example: each of the 4 positions has frequency 1/4 over the 12 rows.
        Assert.All(kfac.EmbeddingFactors[1].Frequencies.ToArray<double>(), p => Assert.Equal(0.25, p, 1e-15));
        var dense = DenseMatrix.Of(kfac);
        int dim = (int)kfac.Dimension;
        for (int r = 0; r < dim; r++) for (int c = 0; c < r; c++) Assert.Equal(dense[r, c], dense[c, r], 1e-10);
        var (values, _) = SymmetricEigen.Decompose(dense);
        Assert.True(values.Min() > -1e-10, $"least eigenvalue {values.Min()}");
        Assert.True(kfac.TopEigenvalue() <= values.Max() * (1 + 1e-9), "the largest block's eigenvalue bounds the shared table's from below");
    }
}
