using Curvature.Kernels.Cpu;
using FsCheck;
using FsCheck.Fluent;

namespace Curvature.Tests.Kernels;

/// <summary>The float32 tanh kernel against Math.Tanh: within a few ulp everywhere, exact limits, NaN kept.</summary>
public class FastTanhTests
{
    [Fact]
    public void Vector_and_scalar_paths_are_within_a_few_ulp_of_tanh()
    {
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(200), Prop.ForAll(Gen.Choose(-2000000, 2000000).ToArbitrary(), Gen.Choose(1, 100).ToArbitrary(), (seed, length) =>
        {
            var r = new Random(seed);
            var x = Enumerable.Range(0, length).Select(_ => (float)((r.NextDouble() * 2 - 1) * Math.Pow(10, r.Next(-5, 2)))).ToArray();
            var d = new float[length];
            FastTanh.Apply(x, d);
            for (int i = 0; i < length; i++)
            {
                double exact = Math.Tanh(x[i]);
                Assert.True(Math.Abs(d[i] - exact) <= 4 * Math.Max(float.Epsilon, MathF.BitIncrement(MathF.Abs((float)exact)) - MathF.Abs((float)exact)) + 1e-7 * Math.Abs(exact),
                    $"tanh({x[i]:R}) = {d[i]:R}, exact {exact:R}");
            }
        }));
    }

    [Fact]
    public void Limits_signs_and_nan()
    {
        float[] x = [0f, -0f, 20f, -20f, float.PositiveInfinity, float.NegativeInfinity, float.NaN, 1e-30f, 7.9f, -7.9f, 3f, -3f, 0.5f, 1f, 2f, 4f, 5f];
        var d = new float[x.Length];
        FastTanh.Apply(x, d);
        Assert.Equal(0f, d[0]);
        Assert.Equal(1f, d[2]); Assert.Equal(-1f, d[3]); Assert.Equal(1f, d[4]); Assert.Equal(-1f, d[5]);
        Assert.True(float.IsNaN(d[6]));
        Assert.Equal(1e-30f, d[7], 1e-37f);
        Assert.Equal(-d[10], d[11]);
    }
}
