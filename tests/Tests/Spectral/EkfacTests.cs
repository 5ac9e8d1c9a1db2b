using Curvature.Autodiff;
using Curvature.Engine;
using Curvature.Models;
using Curvature.Models.Layers;
using Curvature.Spectral;
using FsCheck;
using FsCheck.Fluent;

namespace Curvature.Tests.Spectral;

/// <summary>
/// EKFAC (George et al. 2018) against the explicit per-example Fisher: its scales are the Fisher's diagonal in the
/// factors' eigenbasis, and so it is never farther from the Fisher than K-FAC.
/// </summary>
public class EkfacTests
{
    /// <summary>The per-example gradients of −log p(ŷₙ | xₙ), ŷ the targets K-FAC sampled, each flattened.</summary>
    private static NdArray[] PerExampleGradients(Module model, NdArray inputs, NdArray sampled)
    {
        var ps = model.Parameters();
        return Enumerable.Range(0, inputs.Shape[0]).Select(n =>
        {
            var x = inputs.Slice(0, n, 1);
            var y = sampled.Slice(0, n, 1);
            var grad = Derivatives.Grad(p => Losses.CrossEntropy(model.Forward(new Bindings(ps, p, false), x), y), ps.Select(p => (Tensor)p.Data).ToArray());
            return Vectors.Flatten(grad.Select(t => t.Data).ToArray());
        }).ToArray();
    }

    /// <summary>E_n[(U_Gᵀ ∇W̃ₙ U_A)²] of the weight at <paramref name="weight"/> (its bias the next parameter, if any) from explicit gradients.</summary>
    private static NdArray ExpectedScales(Module model, NdArray[] perExample, int weight, bool bias, NdArray ua, NdArray ug)
    {
        var shapes = model.Parameters().Select(p => p.Shape).ToArray();
        NdArray? sum = null;
        foreach (var g in perExample)
        {
            var parts = Vectors.Unflatten(g, shapes);
            var w = parts[weight].Reshape(shapes[weight][0], -1);
            var block = bias ? NdArray.Concat([w, parts[weight + 1].Reshape(-1, 1)], 1) : w;
            var p = ug.MatMul(block, transA: true).MatMul(ua);
            sum = sum is null ? p * p : sum + p * p;
        }
        return sum! * (1.0 / perExample.Length);
    }

    [Fact]
    public void Scales_are_the_per_example_fishers_diagonal_in_the_eigenbasis_of_an_mlp()
    {
        var rng = new RandomGenerator(21);
        var model = Mlp.Create(rng, width: 5, inputs: 4, classes: 3, dtype: DType.Float64);
        var x = rng.Normal(new Shape(12, 4), dtype: DType.Float64);
        var ekfac = KroneckerFactoredCurvature.Compute(model, "ce", x, new RandomGenerator(3), eigenvalueCorrected: true);
        Assert.True(ekfac.EigenvalueCorrected);
        var perExample = PerExampleGradients(model, x, ekfac.SampledTargets!);
        Assert.Equal(ekfac.Factors.Count, ekfac.Eigenbases.Count);
        for (int l = 0; l < ekfac.Eigenbases.Count; l++)
        {
            var (ua, ug, s) = ekfac.Eigenbases[l];
            GradCheck.AssertClose(s, ExpectedScales(model, perExample, 2 * l, true, ua, ug), 1e-12, 1e-14, $"S of layer {l}");
        }
    }

    [Fact]
    public void Scales_of_a_convolution_sum_each_images_positions_before_squaring()
    {
        // Two images, 16 output positions each: the per-example gradient Σ_t g_t ã_tᵀ, not a sum of per-position squares.
        var rng = new RandomGenerator(22);
        var model = new Sequential(new Conv2d(2, 3, 2, rng, padding: 1, dtype: DType.Float64), new Tanh(), new Flatten(), new Linear(48, 4, rng, dtype: DType.Float64));
        var x = rng.Normal(new Shape(3, 2, 3, 3), dtype: DType.Float64);
        var ekfac = KroneckerFactoredCurvature.Compute(model, "ce", x, new RandomGenerator(4), eigenvalueCorrected: true);
        Assert.Empty(ekfac.Uncovered);
        var perExample = PerExampleGradients(model, x, ekfac.SampledTargets!);
        var (ua, ug, s) = ekfac.Eigenbases[0];
        Assert.Equal(new Shape(3, 2 * 2 * 2 + 1), s.Shape);
        GradCheck.AssertClose(s, ExpectedScales(model, perExample, 0, true, ua, ug), 1e-12, 1e-14, "S of the convolution");
        (ua, ug, s) = ekfac.Eigenbases[1];
        GradCheck.AssertClose(s, ExpectedScales(model, perExample, 2, true, ua, ug), 1e-12, 1e-14, "S of the linear layer");
    }

    [Fact]
    public void Scales_of_an_embedding_land_on_each_tokens_row()
    {
        var rng = new RandomGenerator(23);
        var table = new Embedding(5, 3, rng, DType.Float64);
        var model = new Sequential(table, new Tanh(), new Linear(3, 4, rng, dtype: DType.Float64));
        var ids = NdArray.FromArray(new long[] { 0, 2, 2, 4, 4, 4, 1 });
        var ekfac = KroneckerFactoredCurvature.Compute(model, "ce", ids, new RandomGenerator(5), eigenvalueCorrected: true);
        var perExample = PerExampleGradients(model, ids, ekfac.SampledTargets!);
        var (ug, s) = Assert.Single(ekfac.EmbeddingEigenbases);
        var shapes = model.Parameters().Select(p => p.Shape).ToArray();
        var expected = perExample.Select(g => Vectors.Unflatten(g, shapes)[0].MatMul(ug)).Select(p => p * p).Aggregate((a, b) => a + b) * (1.0 / ids.Shape[0]);
        GradCheck.AssertClose(s, expected, 1e-12, 1e-14, "S of the embedding");
        var rows = s.ToDoubleArray();
        Assert.All(Enumerable.Range(0, 3), j => Assert.Equal(0, rows[3 * 3 + j]));   // token 3 never occurs
    }

    [Fact]
    public void Ekfac_is_never_farther_from_the_fisher_than_kfac()
    {
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(12), Prop.ForAll(Gen.Choose(1, 12).ToArbitrary(), Gen.Choose(0, 100_000).ToArbitrary(), (n, seed) =>
        {
            var rng = new RandomGenerator((ulong)seed);
            var model = Mlp.Create(rng, width: 4, inputs: 3, classes: 3, dtype: DType.Float64);
            var x = rng.Normal(new Shape(n, 3), dtype: DType.Float64);
            // The same sampled labels for both: the factors are computed from one seed.
            var kfac = KroneckerFactoredCurvature.Compute(model, "ce", x, new RandomGenerator((ulong)seed + 1));
            var ekfac = KroneckerFactoredCurvature.Compute(model, "ce", x, new RandomGenerator((ulong)seed + 1), eigenvalueCorrected: true);
            var perExample = PerExampleGradients(model, x, ekfac.SampledTargets!);
            int d = (int)kfac.Dimension;
            var fisher = new double[d, d];
            foreach (var g in perExample.Select(g => g.ToDoubleArray()))
                for (int i = 0; i < d; i++)
                    for (int j = 0; j < d; j++) fisher[i, j] += g[i] * g[j] / n;
            double Distance(double[,] m) => Math.Sqrt(Enumerable.Range(0, d * d).Sum(t => Math.Pow(m[t / d, t % d] - fisher[t / d, t % d], 2)));
            double dk = Distance(DenseMatrix.Of(kfac)), de = Distance(DenseMatrix.Of(ekfac));
            Assert.True(de <= dk * (1 + 1e-9) + 1e-12, $"‖F − EKFAC‖ {de:G6} > ‖F − K-FAC‖ {dk:G6} (n {n})");
            // The top eigenvalue is the largest scale, and of the operator itself (blocks cover every parameter).
            var (values, _) = SymmetricEigen.Decompose(DenseMatrix.Of(ekfac));
            Assert.Equal(values.Max(), ekfac.TopEigenvalue(), 1e-9 * Math.Max(1, values.Max()));
        }));
    }

    [Fact]
    public void With_a_held_basis_only_the_scales_are_re_estimated_in_it()
    {
        // The basis from one batch, the scales from another: S = E[(U_Gᵀ∇W̃U_A)²] in the held U's (embedding, LayerNorm, Linear).
        var rng = new RandomGenerator(25);
        var model = new Sequential(new Embedding(5, 3, rng, DType.Float64), new LayerNorm(3, dtype: DType.Float64), new Linear(3, 4, rng, dtype: DType.Float64));
        var first = NdArray.FromArray(new long[] { 0, 1, 2, 3, 4, 4 });
        var second = NdArray.FromArray(new long[] { 1, 1, 2, 0, 3 });
        var held = KroneckerFactoredCurvature.Compute(model, "ce", first, new RandomGenerator(6), eigenvalueCorrected: true).Inverse(0.1);
        var ekfac = KroneckerFactoredCurvature.Compute(model, "ce", second, new RandomGenerator(7), eigenvalueCorrected: true, basis: held);
        var (ua, ug, s) = Assert.Single(ekfac.Eigenbases);
        var heldBlock = held.Blocks.Single(b => b.Kind == KfacPreconditioner.Eigenbasis);
        Assert.Same(heldBlock.A, ua);
        Assert.Same(heldBlock.B, ug);
        var perExample = PerExampleGradients(model, second, ekfac.SampledTargets!);
        int linearWeight = model.Parameters().Count - 2;
        GradCheck.AssertClose(s, ExpectedScales(model, perExample, linearWeight, true, ua, ug), 1e-12, 1e-14, "S in the held basis");
        var fresh = KroneckerFactoredCurvature.Compute(model, "ce", second, new RandomGenerator(7), eigenvalueCorrected: true);
        Assert.NotEqual(fresh.Eigenbases[0].S.ToDoubleArray(), s.ToDoubleArray());   // the bases differ, so the scales do
        var embeddingBasis = held.Blocks.Single(b => b.Kind == KfacPreconditioner.EmbeddingEigenbasis).A;
        Assert.Same(embeddingBasis, Assert.Single(ekfac.EmbeddingEigenbases).UG);
        Assert.Throws<ArgumentException>(() => KroneckerFactoredCurvature.Compute(model, "ce", second, new RandomGenerator(7), basis: held));
    }

    [Fact]
    public void For_one_example_of_a_one_layer_network_ekfac_is_the_exact_fisher()
    {
        // One example: F = vec(gãᵀ)vec(gãᵀ)ᵀ is a Kronecker product, diagonal in its factors' eigenbasis.
        var rng = new RandomGenerator(24);
        var model = new Sequential(new Linear(3, 4, rng, dtype: DType.Float64));
        var x = rng.Normal(new Shape(1, 3), dtype: DType.Float64);
        var ekfac = KroneckerFactoredCurvature.Compute(model, "ce", x, new RandomGenerator(5), eigenvalueCorrected: true);
        var g = PerExampleGradients(model, x, ekfac.SampledTargets!)[0];
        var v = rng.Normal(new Shape((int)ekfac.Dimension), dtype: DType.Float64);
        GradCheck.AssertClose(ekfac.Apply(v), g * g.Dot(v), 1e-12, 1e-14, "EKFAC vs explicit Fisher");
    }
}
