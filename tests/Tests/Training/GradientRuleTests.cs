using Curvature.Engine;
using Curvature.Models;
using Curvature.Models.Data;
using Curvature.Spectral;
using Curvature.Training;
using FsCheck;
using FsCheck.Fluent;

namespace Curvature.Tests.Training;

/// <summary>The SDE test's gradients: SVAG's weights and combination, Gaussian SGD's mean and covariance Σ/b.</summary>
[Collection(ThreadSettings.Name)]
public class GradientRuleTests
{
    private static (Module Model, NdArray X, NdArray Y) Tiny(int n = 40, DType dtype = DType.Float64)
    {
        var rng = new RandomGenerator(9);
        var x = rng.Normal(new Shape(n, 784), dtype: dtype);
        var y = NdArray.FromArray(Enumerable.Range(0, n).Select(i => (long)(i * 7 % 10)).ToArray());
        return (Mlp.Create(new RandomGenerator(1), width: 6, dtype: dtype), x, y);
    }

    [Fact]
    public void Svag_weights_keep_the_mean_and_multiply_the_noise_variance_by_l()
    {
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(50), Prop.ForAll(Gen.Choose(1, 1024).ToArbitrary(), l =>
        {
            var svag = new Svag(l);
            Assert.Equal(1, svag.R1 + svag.R2, 1e-12);
            Assert.Equal(l, svag.R1 * svag.R1 + svag.R2 * svag.R2, 1e-9 * l);
        }));
        Assert.Equal((1.0, 0.0), (new Svag(1).R1, new Svag(1).R2));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Svag(0));
    }

    [Fact]
    public void Svag_combines_two_fresh_minibatches_with_r1_and_r2()
    {
        var (model, x, y) = Tiny();
        var data = new Dataset(x, y);
        var svag = new Svag(4);
        var draw = svag.Draw(new MinibatchStream(data, 8, 3), new RandomGenerator(5));
        var (_, g) = draw.Gradient(model, "ce", null, null);
        // The same two minibatches, drawn again from the same stream, by hand.
        var stream = new MinibatchStream(data, 8, 3);
        var rng = new RandomGenerator(5);
        var (x1, y1) = stream.Next(rng);
        var (x2, y2) = stream.Next(rng);
        Assert.NotEqual(x1.ToArray<double>(), x2.ToArray<double>());
        var g1 = Trainer.Gradient(model, "ce", x1, y1, null).Gradients;
        var g2 = Trainer.Gradient(model, "ce", x2, y2, null).Gradients;
        for (int i = 0; i < g.Length; i++)
        {
            var expected = (g1[i].Data * svag.R1 + g2[i].Data * svag.R2).ToArray<double>();
            var actual = g[i].Data.ToArray<double>();
            for (int j = 0; j < expected.Length; j++) Assert.Equal(expected[j], actual[j], 1e-12);
        }
        Assert.Equal(x1.ToArray<double>(), draw.Inputs.ToArray<double>());      // probes and accuracy read the first minibatch
    }

    [Fact]
    public void Gaussian_weights_sum_to_one_and_its_gradient_has_the_pools_mean_and_covariance_over_b()
    {
        var (model, x, y) = Tiny();
        const int b = 4, draws = 600;
        var rule = new GaussianGradient(x, y, b);
        var rng = new RandomGenerator(17);
        Assert.Equal(1, rule.Weights(new RandomGenerator(2)).ToArray<double>().Sum(), 1e-12);

        var noise = new GradientNoise(model, "ce", x, y, training: true);
        var (_, mean) = noise.LossAndGradient();
        var v = Vectors.Unflatten(Vectors.Normalize(new RandomGenerator(4).Normal(new Shape((int)mean.Sum(p => p.Size)), dtype: DType.Float64)), mean.Select(p => p.Shape).ToArray());
        double expectedMean = ParameterVector.Dot(mean, v), expectedVariance = noise.VarianceAlong(v) / b;

        var samples = new double[draws];
        for (int k = 0; k < draws; k++)
        {
            var (_, g) = rule.Draw(null!, rng).Gradient(model, "ce", null, null);
            samples[k] = ParameterVector.Dot(g.Select(t => t.Data).ToArray(), v);
        }
        double m = samples.Average(), variance = samples.Sum(s => (s - m) * (s - m)) / (draws - 1);
        // The sample mean's error is √(σ²/600) and the sample variance's relative error about √(2/600) ≈ 0.058.
        Assert.True(Math.Abs(m - expectedMean) < 4 * Math.Sqrt(expectedVariance / draws), $"mean {m}, expected {expectedMean} ± {Math.Sqrt(expectedVariance / draws)}");
        Assert.True(Math.Abs(variance / expectedVariance - 1) < 0.25, $"variance along v {variance}, expected vᵀΣv/b = {expectedVariance}");
    }

    [Fact]
    public void Gaussian_sgd_refuses_a_pool_or_batch_it_cannot_use()
    {
        var (_, x, y) = Tiny(n: 10);
        Assert.Throws<ArgumentOutOfRangeException>(() => new GaussianGradient(x, y, 11));
        Assert.Throws<ArgumentException>(() => new GaussianGradient(x.Rows(0, 1), y.Rows(0, 1), 1));
    }

    [Fact]
    public void Runs_resume_exactly_with_every_gradient_rule_even_when_the_streams_seed_is_not_the_trainers()
    {
        // The stream (seed 3) draws its permutations from the trainer's random stream (seed 5): the cursor must
        // name that stream, not the stream's own seed (a resume used to rebuild the epoch's order from the wrong one).
        var (_, x, y) = Tiny(n: 24, dtype: DType.Float32);
        foreach (IGradientRule rule in new IGradientRule[] { new MinibatchGradient(), new Svag(4), new GaussianGradient(x, y, 6) })
        {
            var dir = Path.Combine(Scratch.NewDirectory(), "rule");
            Trainer Make(int steps, string? folder) => new()
            {
                Model = Mlp.Create(new RandomGenerator(1), width: 6), Optimizer = new Curvature.Optimizers.GradientDescent(0.05),
                Batches = new MinibatchStream(new Dataset(x, y), 6, 3), GradientRule = rule, Steps = steps, Seed = 5, Folder = folder, Resume = folder is not null, CheckpointEvery = 2,
            };
            var whole = Make(7, null).Run().Losses;
            Make(3, dir).Run();
            Assert.True(whole.SequenceEqual(Make(7, dir).Run().Losses), rule.Name);
        }
    }
}
