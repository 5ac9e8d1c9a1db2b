using Curvature.Kernels;
using Curvature.Kernels.Cpu;
using FsCheck;
using FsCheck.Fluent;

namespace Curvature.Tests.Kernels;

/// <summary>erf against reference values and its identities.</summary>
public class ErrorFunctionTests
{
    [Theory]
    [InlineData(0.0, 0.0)]
    [InlineData(0.1, 0.1124629160182849)]
    [InlineData(0.5, 0.5204998778130465)]
    [InlineData(1.0, 0.8427007929497149)]
    [InlineData(2.0, 0.9953222650189527)]
    [InlineData(2.5, 0.9995930479825550)]
    [InlineData(3.0, 0.9999779095030014)]
    [InlineData(4.0, 0.9999999845827421)]
    [InlineData(6.0, 1.0)]
    public void Matches_reference_values(double x, double expected)
    {
        Assert.Equal(expected, ErrorFunction.Erf(x), 2e-15);
        Assert.Equal(-expected, ErrorFunction.Erf(-x), 2e-15);
    }

    [Fact]
    public void Is_continuous_across_the_switch_and_its_derivative_matches_the_gaussian()
    {
        Assert.Equal(ErrorFunction.Erf(3.0 - 1e-12), ErrorFunction.Erf(3.0 + 1e-12), 1e-15);
        for (double x = -4; x <= 4; x += 0.37)
        {
            double fd = (ErrorFunction.Erf(x + 1e-5) - ErrorFunction.Erf(x - 1e-5)) / 2e-5;
            Assert.Equal(2 / Math.Sqrt(Math.PI) * Math.Exp(-x * x), fd, 1e-9);
        }
    }
}

/// <summary>The float32 erf kernel against the float64 series: within 2e-7 absolute on both vector and scalar paths.</summary>
public class FastErfTests
{
    [Fact]
    public void Vector_and_scalar_paths_are_within_2e_7_of_erf()
    {
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(200), Prop.ForAll(Gen.Choose(-2000000, 2000000).ToArbitrary(), Gen.Choose(1, 100).ToArbitrary(), (seed, length) =>
        {
            var r = new Random(seed);
            var x = Enumerable.Range(0, length).Select(_ => (float)((r.NextDouble() * 2 - 1) * Math.Pow(10, r.Next(-5, 2)))).ToArray();
            var d = new float[length];
            FastErf.Apply(x, d);
            for (int i = 0; i < length; i++)
            {
                double exact = ErrorFunction.Erf(x[i]);
                Assert.True(Math.Abs(d[i] - exact) <= 2e-7 + 1e-6 * Math.Abs(exact), $"erf({x[i]:R}) = {d[i]:R}, exact {exact:R}");
            }
        }));
    }

    [Fact]
    public void Limits_oddness_and_nan()
    {
        float[] x = [0f, 10f, -10f, float.PositiveInfinity, float.NegativeInfinity, float.NaN, 0.5f, -0.5f, 4f, 3.9f];
        var d = new float[x.Length];
        FastErf.Apply(x, d);
        Assert.Equal(0f, d[0]);
        Assert.Equal(1f, d[1]); Assert.Equal(-1f, d[2]); Assert.Equal(1f, d[3]); Assert.Equal(-1f, d[4]);
        Assert.True(float.IsNaN(d[5]));
        Assert.Equal(-d[6], d[7]);
        Assert.True(d[8] <= 1f && d[9] <= 1f);
    }
}

/// <summary>The fused float32 GELU and its derivative against their float64 definitions.</summary>
public class GaussianKernelTests
{
    [Fact]
    public void Float32_gelu_and_derivative_match_float64_within_float_rounding()
    {
        var r = new Random(3);
        var x = Enumerable.Range(0, 3001).Select(_ => (float)((r.NextDouble() * 2 - 1) * 8)).ToArray(); // tails past the chunk size
        var y = new float[x.Length];
        var d = new float[x.Length];
        Gaussian.Apply(true, x, y);
        Gaussian.Apply(false, x, d);
        var h = new float[x.Length];
        Gaussian.SecondDerivative(x, h);
        for (int i = 0; i < x.Length; i++)
        {
            double gelu = ScalarMath.Gelu(x[i]), slope = ScalarMath.GeluDerivative(x[i]);
            Assert.True(Math.Abs(y[i] - gelu) <= 2e-6 * Math.Max(1, Math.Abs(gelu)), $"gelu({x[i]:R}) = {y[i]:R}, expected {gelu:R}");
            Assert.True(Math.Abs(d[i] - slope) <= 2e-6, $"gelu'({x[i]:R}) = {d[i]:R}, expected {slope:R}");
            double curvature = ScalarMath.GeluSecondDerivative(x[i]);
            Assert.True(Math.Abs(h[i] - curvature) <= 2e-6, $"gelu''({x[i]:R}) = {h[i]:R}, expected {curvature:R}");
        }
    }
}
