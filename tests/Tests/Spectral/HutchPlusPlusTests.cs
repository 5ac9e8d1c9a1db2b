using Curvature.Engine;
using Curvature.Spectral;
using FsCheck;
using FsCheck.Fluent;

namespace Curvature.Tests.Spectral;

/// <summary>Hutch++ (Meyer et al. 2021) on planted spectra: exact at low rank, unbiased, and with less variance than Hutchinson for the same budget.</summary>
public class HutchPlusPlusTests
{
    [Fact]
    public void A_matrix_of_rank_at_most_a_third_of_the_budget_is_traced_exactly()
    {
        // Q = orth(A·S) spans A's whole range, so tr(QᵀAQ) is the trace and the deflated residual is zero.
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(20), Prop.ForAll(Gen.Choose(1, 6).ToArbitrary(), Gen.Choose(0, 100_000).ToArbitrary(), (rank, seed) =>
        {
            var rng = new RandomGenerator((ulong)seed);
            var spectrum = Enumerable.Range(0, 30).Select(i => i < rank ? 1 + 9 * rng.Uniform(new Shape(1), 0, 1, DType.Float64).ToArray<double>()[0] : 0.0).ToArray();
            var op = DenseOperator.Planted(spectrum, rng);
            var estimate = HutchPlusPlus.Trace(op, budget: 3 * (rank + 1), rng);
            Assert.Equal(spectrum.Sum(), estimate.Value, 1e-8 * spectrum.Sum());
            Assert.True(estimate.StandardError <= 1e-8 * spectrum.Sum(), $"residual stderr {estimate.StandardError}");
        }));
    }

    [Fact]
    public void It_is_unbiased_and_beats_hutchinson_at_the_same_budget_on_a_decaying_spectrum()
    {
        // λᵢ = 1/i on n = 60 (tr = H₆₀ ≈ 4.68), budget 18: 400 independent runs of each estimator.
        var spectrum = Enumerable.Range(1, 60).Select(i => 1.0 / i).ToArray();
        var op = DenseOperator.Planted(spectrum, new RandomGenerator(11));
        double truth = spectrum.Sum();
        var rng = new RandomGenerator(12);
        var plus = Enumerable.Range(0, 400).Select(_ => HutchPlusPlus.Trace(op, 18, rng).Value).ToArray();
        var plain = Enumerable.Range(0, 400).Select(_ => Hutchinson.Trace(op, 18, rng).Value).ToArray();
        static (double Mean, double Variance) Moments(double[] x)
        {
            double m = x.Average();
            return (m, x.Sum(v => (v - m) * (v - m)) / (x.Length - 1));
        }
        var (meanPlus, varPlus) = Moments(plus);
        var (meanPlain, varPlain) = Moments(plain);
        Assert.True(Math.Abs(meanPlus - truth) <= 4 * Math.Sqrt(varPlus / plus.Length), $"Hutch++ mean {meanPlus} vs {truth}");
        Assert.True(Math.Abs(meanPlain - truth) <= 4 * Math.Sqrt(varPlain / plain.Length), $"Hutchinson mean {meanPlain} vs {truth}");
        Assert.True(varPlus < 0.5 * varPlain, $"variance: Hutch++ {varPlus}, Hutchinson {varPlain}");
    }

    [Fact]
    public void Its_standard_error_describes_its_spread()
    {
        // The reported error (the residual part's, given the sketch) against the spread of 300 runs: within a factor of two.
        var spectrum = Enumerable.Range(1, 50).Select(i => Math.Pow(0.8, i)).ToArray();
        var op = DenseOperator.Planted(spectrum, new RandomGenerator(5));
        var rng = new RandomGenerator(6);
        var runs = Enumerable.Range(0, 300).Select(_ => HutchPlusPlus.Trace(op, 12, rng)).ToArray();
        double mean = runs.Average(r => r.Value);
        double spread = Math.Sqrt(runs.Sum(r => (r.Value - mean) * (r.Value - mean)) / (runs.Length - 1));
        double reported = Math.Sqrt(runs.Average(r => r.StandardError * r.StandardError));
        Assert.InRange(reported / spread, 0.5, 2.0);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(2)]
    [InlineData(10)]
    public void A_budget_it_cannot_split_in_three_is_refused(int budget)
    {
        var op = DenseOperator.Planted([1.0, 2.0, 3.0], new RandomGenerator(1));
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => HutchPlusPlus.Trace(op, budget, new RandomGenerator(2)));
        Assert.Contains("multiple of 3", e.Message);
    }
}
