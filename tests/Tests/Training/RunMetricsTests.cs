using Curvature.Training;
using FsCheck;
using FsCheck.Fluent;

namespace Curvature.Tests.Training;

/// <summary>The smoothing the plots use: a bias-corrected exponential average, by its defining properties.</summary>
public class RunMetricsTests
{
    [Fact]
    public void The_exponential_average_keeps_constants_lies_within_the_data_and_is_a_weighted_mean()
    {
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(200), Prop.ForAll(
            Gen.ArrayOf(Gen.Choose(-1000, 1000)).Where(a => a.Length > 0).ToArbitrary(), Gen.Choose(1, 50).ToArbitrary(), Gen.Choose(-50, 50).ToArbitrary(), (ints, w, c) =>
        {
            var x = ints.Select(i => i / 10.0).ToArray();
            // A constant stays that constant from the very first step (the start-up bias is divided out).
            Assert.All(RunMetrics.ExponentialAverage(Enumerable.Repeat((double)c, x.Length).ToArray(), w), v => Assert.Equal(c, v, 1e-9));
            var m = RunMetrics.ExponentialAverage(x, w);
            double beta = 1 - 2.0 / (w + 1);
            for (int t = 0; t < x.Length; t++)
            {
                // The normalized weighted mean of the data so far, weights β^(t−i).
                double num = 0, den = 0;
                for (int i = 0; i <= t; i++) { double wt = Math.Pow(beta, t - i); num += wt * x[i]; den += wt; }
                Assert.Equal(num / den, m[t], 1e-9 * Math.Max(1, Math.Abs(m[t])));
                Assert.InRange(m[t], x[..(t + 1)].Min() - 1e-9, x[..(t + 1)].Max() + 1e-9);
            }
        }));
        Assert.Equal(new[] { 1.0, 2.0, 3.0 }, RunMetrics.ExponentialAverage([1, 2, 3], 1));   // span 1: no smoothing
    }
}
