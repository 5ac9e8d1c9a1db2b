using Curvature.Engine;
using Curvature.Kernels.Cpu;

namespace Curvature.Tests.Kernels;

/// <summary>Philox4x32-10 against the Random123 known-answer vectors, and the generator built on it.</summary>
public class PhiloxTests
{
    [Theory]
    [InlineData(0u, 0u, 0u, 0u, 0u, 0u, 0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u)]
    [InlineData(0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu)]
    [InlineData(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u, 0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u)]
    public void Matches_known_answers(uint c0, uint c1, uint c2, uint c3, uint k0, uint k1, uint r0, uint r1, uint r2, uint r3)
    {
        Assert.Equal((r0, r1, r2, r3), Philox.Block(c0, c1, c2, c3, k0, k1));
    }

    [Fact]
    public void Same_seed_gives_the_same_stream_and_draws_advance_it()
    {
        var a = new RandomGenerator(42);
        var b = new RandomGenerator(42);
        var first = a.Normal(new Shape(1001));
        Assert.Equal(first.ToArray<float>(), b.Normal(new Shape(1001)).ToArray<float>());
        Assert.NotEqual(first.ToArray<float>(), a.Normal(new Shape(1001)).ToArray<float>());
        // A generator restored from (seed, offset) continues exactly where the other one is.
        var resumed = new RandomGenerator(42, a.Offset);
        Assert.Equal(a.Uniform(new Shape(17)).ToArray<float>(), resumed.Uniform(new Shape(17)).ToArray<float>());
    }

    [Fact]
    public void Distributions_have_the_right_moments_and_ranges()
    {
        var rng = new RandomGenerator(7);
        var u = rng.Uniform(new Shape(200_000), dtype: DType.Float64).ToArray<double>();
        Assert.All(u, x => Assert.InRange(x, 0.0, 1.0 - 1e-12));
        Assert.InRange(u.Average(), 0.497, 0.503);
        var z = rng.Normal(new Shape(200_000), dtype: DType.Float64).ToArray<double>();
        Assert.InRange(z.Average(), -0.01, 0.01);
        Assert.InRange(z.Select(x => x * x).Average(), 0.98, 1.02);
        var r = rng.Rademacher(new Shape(10_000)).ToArray<float>();
        Assert.All(r, x => Assert.True(x == 1 || x == -1));
        var ints = rng.Integers(new Shape(10_000), 10).ToArray<long>();
        Assert.All(ints, x => Assert.InRange(x, 0, 9));
        Assert.Equal(10, ints.Distinct().Count());
    }
}
