using Curvature.Training;
using FsCheck;
using FsCheck.Fluent;

namespace Curvature.Tests.Training;

/// <summary>Student-t intervals and paired tests against tabulated values and their defining identities.</summary>
public class StatisticsTests
{
    [Theory]
    [InlineData(1, 12.706204736)]
    [InlineData(2, 4.302652730)]
    [InlineData(4, 2.776445105)]
    [InlineData(9, 2.262157163)]
    [InlineData(30, 2.042272456)]
    public void The_975_quantile_matches_the_table(int nu, double expected) =>
        Assert.Equal(expected, Statistics.StudentQuantile(0.975, nu), 1e-7);

    [Fact]
    public void The_cdf_is_symmetric_monotone_and_inverted_by_the_quantile()
    {
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(200), Prop.ForAll(Gen.Choose(-4000, 4000).ToArbitrary(), Gen.Choose(1, 60).ToArbitrary(), (ti, nu) =>
        {
            double t = ti / 500.0;
            double c = Statistics.StudentCdf(t, nu);
            Assert.Equal(1, c + Statistics.StudentCdf(-t, nu), 1e-12);
            Assert.True(Statistics.StudentCdf(t + 0.01, nu) > c);
            if (c is > 1e-9 and < 1 - 1e-9) Assert.Equal(t, Statistics.StudentQuantile(c, nu), 1e-6 * Math.Max(1, Math.Abs(t)));
        }));
        // ν = 1 is the Cauchy distribution: F(t) = ½ + atan(t)/π.
        foreach (var t in new[] { -3.0, -0.5, 0, 0.7, 5 }) Assert.Equal(0.5 + Math.Atan(t) / Math.PI, Statistics.StudentCdf(t, 1), 1e-12);
    }

    [Fact]
    public void A_summary_gives_the_mean_the_sample_std_and_the_t_interval()
    {
        var s = Statistics.Summarize([1, 2, 3, 4, 5, double.NaN]);
        Assert.Equal(5, s.Count);
        Assert.Equal(3, s.Mean, 1e-15);
        Assert.Equal(Math.Sqrt(2.5), s.Std, 1e-15);
        Assert.Equal(2.776445105 * Math.Sqrt(2.5) / Math.Sqrt(5), s.HalfWidth, 1e-8);
        var one = Statistics.Summarize([4]);
        Assert.True(double.IsNaN(one.Low) && one.Mean == 4);
    }

    [Fact]
    public void The_paired_test_uses_the_differences_over_seeds()
    {
        // d = (0.1, 0.2, 0.3): mean 0.2, sd 0.1, t = 0.2/(0.1/√3) = 3.4641, ν = 2, two-sided p = 0.0742.
        var test = Statistics.Paired([1.1, 2.2, 3.3], [1, 2, 3])!;
        Assert.Equal(0.2, test.MeanDifference, 1e-12);
        Assert.Equal(2 * Math.Sqrt(3), test.T, 1e-9);
        Assert.Equal(0.07417990, test.P, 1e-6);
        Assert.Null(Statistics.Paired([1], [2]));
        Assert.Equal(0, Statistics.Paired([2, 3], [1, 2])!.P); // identical differences: certain
        Assert.Throws<ArgumentException>(() => Statistics.Paired([1, 2], [1]));
    }
}
