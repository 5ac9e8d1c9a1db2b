using Curvature.Engine;
using Curvature.Models;
using Curvature.Models.Layers;
using Curvature.Optimizers;
using Curvature.Spectral;
using Curvature.Training;
using FsCheck;
using FsCheck.Fluent;

namespace Curvature.Tests.Optimizers;

/// <summary>The K-FAC preconditioner inverts the damped K-FAC operator; the optimizer descends and resumes exactly.</summary>
[Collection(ThreadSettings.Name)]
public class KfacOptimizerTests
{
    [Fact]
    public void The_damped_inverse_of_a_positive_semidefinite_matrix_is_exact()
    {
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(20), Prop.ForAll(Gen.Choose(1, 30).ToArbitrary(), Gen.Choose(0, 100_000).ToArbitrary(), (n, seed) =>
        {
            var rng = new RandomGenerator((ulong)seed);
            var b = rng.Normal(new Shape(n, Math.Max(1, n / 2)), dtype: DType.Float64);
            var m = b.MatMul(b, transB: true);                           // rank ≤ n/2: singular without the shift
            var inv = KfacPreconditioner.DampedInverse(m, 0.1);
            var eye = Enumerable.Range(0, n * n).Select(i => i / n == i % n ? 1.0 : 0.0).ToArray();
            GradCheck.AssertClose((m + NdArray.FromArray(eye, new Shape(n, n)) * 0.1).MatMul(inv), NdArray.FromArray(eye, new Shape(n, n)), 1e-9, 1e-9, "(M + sI)·(M + sI)⁻¹ = I");
        }));
    }

    private sealed class Mixed : Module
    {
        private readonly Embedding table;
        private readonly LayerNorm norm;
        private readonly Linear fc;
        public Mixed(RandomGenerator rng)
        {
            table = AddModule("table", new Embedding(6, 4, rng, DType.Float64));
            norm = AddModule("norm", new LayerNorm(4, dtype: DType.Float64));
            fc = AddModule("fc", new Linear(4, 3, rng, dtype: DType.Float64));
        }
        public override Curvature.Autodiff.Tensor Forward(Bindings b, Curvature.Autodiff.Tensor ids) => fc.Forward(b, norm.Forward(b, table.Forward(b, ids)));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void The_preconditioner_inverts_the_damped_kfac_operator_block_by_block(bool eigenvalueCorrected)
    {
        // Embedding, LayerNorm and Linear blocks with no shared parameter: K_λ·(P·g) = g for any g, K-FAC's or EKFAC's.
        var rng = new RandomGenerator(12);
        var model = new Mixed(rng);
        var ids = NdArray.FromArray(new long[] { 0, 1, 1, 3, 5, 5, 5, 2 });
        foreach (double damping in new[] { 1e-3, 0.1 })
        {
            var kfac = KroneckerFactoredCurvature.Compute(model, "ce", ids, new RandomGenerator(4), damping: damping, eigenvalueCorrected: eigenvalueCorrected);
            Assert.Equal(eigenvalueCorrected ? [KfacPreconditioner.EmbeddingEigenbasis, KfacPreconditioner.Normalization, KfacPreconditioner.Eigenbasis]
                : new[] { KfacPreconditioner.Embedding, KfacPreconditioner.Normalization, KfacPreconditioner.Kronecker }, kfac.Inverse(damping).Blocks.Select(b => b.Kind).ToArray());
            var pre = kfac.Inverse(damping);
            var shapes = model.Parameters().Select(p => p.Shape).ToArray();
            var g = rng.Normal(new Shape((int)kfac.Dimension), dtype: DType.Float64);
            var pg = Vectors.Flatten(pre.Apply(Vectors.Unflatten(g, shapes)));
            GradCheck.AssertClose(kfac.Apply(pg), g, 1e-8, 1e-8, $"K_λ·P·g = g at λ {damping}");
        }
    }

    [Theory]
    [InlineData(false, 0.5, 1, 0.0, 1)]
    [InlineData(false, 0.5, 1, 0.8, 2)]   // averaged factors, inverted every other refresh: the checkpoint holds the average of steps 0 and 3
    [InlineData(true, 0.1, 1, 0.0, 1)]    // EKFAC damps S + λ, not each factor by √λ: larger steps at the same rate
    [InlineData(true, 0.1, 2, 0.0, 1)]    // the eigenbasis every other refresh: the resumed run holds the basis of step 0 at step 3
    public void It_descends_on_a_small_network_and_a_resumed_run_takes_the_same_steps(bool eigenvalueCorrected, double rate, int basisEvery, double decay, int inverseEvery)
    {
        var rng = new RandomGenerator(7);
        var x = rng.Normal(new Shape(16, 5));
        var y = NdArray.FromArray(Enumerable.Range(0, 16).Select(i => (long)(i % 3)).ToArray());
        var dir = Path.Combine(Scratch.NewDirectory(), eigenvalueCorrected ? $"ekfac{basisEvery}" : $"kfac{decay}_{inverseEvery}");
        Trainer Make(int steps, bool resume, string? folder, bool plain = false) => new()
        {
            Model = Mlp.Create(new RandomGenerator(1), width: 6, inputs: 5, classes: 3),
            Optimizer = plain ? new KfacOptimizer(rate, momentum: 0.5, damping: 0.1, every: 3, eigenvalueCorrected: eigenvalueCorrected)
                : new KfacOptimizer(rate, momentum: 0.5, damping: 0.1, every: 3, eigenvalueCorrected: eigenvalueCorrected, basisEvery: basisEvery, factorDecay: decay, inverseEvery: inverseEvery),
            Batches = new FullBatchStream(x, y), Steps = steps, Folder = folder, Resume = resume, CheckpointEvery = 2, Probe = new ProbeSettings(x, y, AuditEvery: 0),
        };
        var whole = Make(10, false, null).Run().Losses;
        Assert.True(whole[^1] < 0.8 * whole[0], $"{(eigenvalueCorrected ? "EKFAC" : "K-FAC")} did not descend: {whole[0]} → {whole[^1]}");
        Make(5, false, dir).Run();                                    // the checkpoint at step 5 holds the inverse of step 3
        Assert.Equal(whole, Make(10, true, dir).Run().Losses);
        if (basisEvery > 1 || decay > 0) Assert.NotEqual(whole, Make(10, false, null, plain: true).Run().Losses);   // the held basis, the average are used
    }

    [Fact]
    public void The_running_average_mixes_every_factor_and_refuses_another_models()
    {
        var rng = new RandomGenerator(14);
        var model = new Mixed(rng);
        var first = KroneckerFactoredCurvature.Compute(model, "ce", NdArray.FromArray(new long[] { 0, 1, 2, 3 }), new RandomGenerator(1));
        var second = KroneckerFactoredCurvature.Compute(model, "ce", NdArray.FromArray(new long[] { 4, 5, 5, 1 }), new RandomGenerator(2));
        var mixed = second.Averaged(first.FactorArrays(), 0.75);
        Assert.Equal(2 + 3 + 2, mixed.FactorArrays().Count);          // Linear A, G; LayerNorm's three moments; the embedding's f, G
        foreach (var (m, (p, c)) in mixed.FactorArrays().Zip(first.FactorArrays().Zip(second.FactorArrays())))
            GradCheck.AssertClose(m, p * 0.75 + c * 0.25, 1e-15, 1e-15, "ξ·previous + (1 − ξ)·latest");
        var pre = mixed.Inverse(0.1);
        var shapes = model.Parameters().Select(p => p.Shape).ToArray();
        var g = rng.Normal(new Shape((int)mixed.Dimension), dtype: DType.Float64);
        var damped = KroneckerFactoredCurvature.Compute(model, "ce", NdArray.FromArray(new long[] { 4, 5, 5, 1 }), new RandomGenerator(2), damping: 0.1).Averaged(first.FactorArrays(), 0.75);
        GradCheck.AssertClose(damped.Apply(Vectors.Flatten(pre.Apply(Vectors.Unflatten(g, shapes)))), g, 1e-8, 1e-8, "the average's inverse inverts the damped average");
        var other = KroneckerFactoredCurvature.Compute(Mlp.Create(rng, width: 3, inputs: 2, classes: 2, dtype: DType.Float64), "ce", rng.Normal(new Shape(3, 2), dtype: DType.Float64), new RandomGenerator(3));
        Assert.Contains("do not match", Assert.Throws<ArgumentException>(() => second.Averaged(other.FactorArrays(), 0.5)).Message);
        Assert.Throws<ArgumentException>(() => new KfacOptimizer(0.1, eigenvalueCorrected: true, factorDecay: 0.9));
        Assert.Throws<ArgumentException>(() => new KfacOptimizer(0.1, basisEvery: 2));
    }

    [Fact]
    public void Without_a_probe_batch_it_says_what_it_needs()
    {
        var rng = new RandomGenerator(8);
        var x = rng.Normal(new Shape(4, 5));
        var y = NdArray.FromArray(new long[] { 0, 1, 2, 0 });
        var e = Assert.Throws<InvalidOperationException>(() => new Trainer
        {
            Model = Mlp.Create(new RandomGenerator(1), width: 4, inputs: 5, classes: 3), Optimizer = new KfacOptimizer(0.05), Batches = new FullBatchStream(x, y), Steps = 2,
        }.Run());
        Assert.Contains("kfac: step 0 needs K-FAC factors", e.Message);
    }
}
