using Curvature.Kernels;
using FsCheck;
using FsCheck.Fluent;

namespace Curvature.Tests.Kernels;

/// <summary>The kernels' own float64 functions against the C library's (through <see cref="Math"/>), in ulps.</summary>
public class ScalarMathTests
{
    private static double Ulps(double got, double want)
    {
        if (got.Equals(want)) return 0;
        if (double.IsNaN(got) || double.IsNaN(want) || double.IsInfinity(got) || double.IsInfinity(want)) return double.PositiveInfinity;
        return Math.Abs(got - want) / (Math.BitIncrement(Math.Abs(want)) - Math.Abs(want));
    }

    private static void Within(string name, Func<double, double> f, Func<double, double> reference, double lo, double hi, double ulps)
    {
        var args = Gen.Choose(0, int.MaxValue).Select(i => lo + (hi - lo) * (i / (double)int.MaxValue));
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(2000), Prop.ForAll(args.ToArbitrary(), x =>
            Assert.True(Ulps(f(x), reference(x)) <= ulps, $"{name}({x:R}) = {f(x):R}, the C library gives {reference(x):R}")));
    }

    [Fact]
    public void Exp_log_sin_and_cos_are_within_an_ulp_and_tanh_within_three()
    {
        Within("exp", ScalarMath.Exp, Math.Exp, -745, 709.7, 1);
        Within("exp", ScalarMath.Exp, Math.Exp, -1, 1, 1);
        Within("log", x => ScalarMath.Log(Math.Exp(x)), x => Math.Log(Math.Exp(x)), -744, 709, 1);
        Within("log", ScalarMath.Log, Math.Log, 0.9, 1.1, 1);
        Within("log", ScalarMath.Log, Math.Log, 0, 1e-310, 1);
        Within("sin", ScalarMath.Sin, Math.Sin, 0, 2 * Math.PI, 1);
        Within("cos", ScalarMath.Cos, Math.Cos, 0, 2 * Math.PI, 1);
        Within("sin", ScalarMath.Sin, Math.Sin, -800_000, 800_000, 1);
        Within("cos", ScalarMath.Cos, Math.Cos, -800_000, 800_000, 1);
        Within("tanh", ScalarMath.Tanh, Math.Tanh, -25, 25, 3);
        Within("tanh", ScalarMath.Tanh, Math.Tanh, -1e-3, 1e-3, 3);
        // expm1 where eˣ − 1 does not cancel, and near 0 against tanh's identity expm1(2x) = 2·tanh x/(1 − tanh x).
        Within("expm1", ScalarMath.Expm1, x => Math.Exp(x) - 1, 2, 700, 1);
        Within("expm1", ScalarMath.Expm1, x => 2 * Math.Tanh(x / 2) / (1 - Math.Tanh(x / 2)), -1e-3, 1e-3, 3);
    }

    [Fact]
    public void Pow_is_within_a_few_ulps_for_the_exponents_of_a_power_layer()
    {
        Within("x^3", x => ScalarMath.Pow(x, 3), x => Math.Pow(x, 3), -100, 100, 1);
        Within("x^7", x => ScalarMath.Pow(x, 7), x => Math.Pow(x, 7), -10, 10, 5);
        Within("x^-2", x => ScalarMath.Pow(x, -2), x => Math.Pow(x, -2), 0.01, 100, 2);
        Within("x^2.5", x => ScalarMath.Pow(x, 2.5), x => Math.Pow(x, 2.5), 0, 100, 4);
        Within("x^-1.5", x => ScalarMath.Pow(x, -1.5), x => Math.Pow(x, -1.5), 1e-6, 100, 4);
        Within("x^0.3", x => ScalarMath.Pow(x, 0.3), x => Math.Pow(x, 0.3), 1e-6, 1000, 4);
        Within("1.7^y", y => ScalarMath.Pow(1.7, y), y => Math.Pow(1.7, y), -30, 30, 8);
    }

    [Fact]
    public void Special_values_are_the_c_librarys()
    {
        double[] xs = [double.NaN, double.PositiveInfinity, double.NegativeInfinity, 0.0, -0.0, 710, -746, 1e-320, 1, -1];
        foreach (var x in xs)
        {
            // Exactly the C library's where the result is exact (0, ±∞, NaN, 1, ±1 for tanh); within an ulp elsewhere
            // (fdlibm's e is 2.7182818284590455, glibc's 2.718281828459045).
            void Same(string name, double got, double want) =>
                Assert.True(got.Equals(want) || Ulps(got, want) <= 1, $"{name}({x:R}) = {got:R}, the C library gives {want:R}");
            Same("exp", ScalarMath.Exp(x), Math.Exp(x));
            Same("log", ScalarMath.Log(x), Math.Log(x));
            Same("tanh", ScalarMath.Tanh(x), Math.Tanh(x));
            if (double.IsFinite(x)) { Same("sin", ScalarMath.Sin(x), Math.Sin(x)); Same("cos", ScalarMath.Cos(x), Math.Cos(x)); }
            else { Assert.True(double.IsNaN(ScalarMath.Sin(x))); Assert.True(double.IsNaN(ScalarMath.Cos(x))); }
        }
        double[] ys = [0.0, -0.0, 0.5, -0.5, 1, 2, 3, -3, 5, -5, 6, 1.0 / 3, 1e300, 9007199254740993.0, double.PositiveInfinity, double.NegativeInfinity, double.NaN];
        foreach (var x in xs.Concat([-2.0, 0.5, 2.0, -1e300]))
            foreach (var y in ys)
            {
                // The documented bound: a few ulps plus |f·ln x| (|f| ≤ ½) for |y| ≤ 64, plus |y·ln x| beyond.
                double want = Math.Pow(x, y), got = ScalarMath.Pow(x, y);
                double bound = 4 + Math.Abs(Math.Log(Math.Abs(x))) * (Math.Abs(y) <= 64 ? 0.5 : Math.Abs(y));
                Assert.True(want.Equals(got) || Ulps(got, want) <= bound, $"pow({x:R}, {y:R}) = {got:R}, the C library gives {want:R}");
            }
    }
}
