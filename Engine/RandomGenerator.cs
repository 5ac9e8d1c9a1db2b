using Curvature.Kernels.Cpu;

namespace Curvature.Engine;

/// <summary>
/// A seeded, counter-based random generator (Philox4x32-10). Its state is the seed and a counter offset;
/// each draw consumes counters for its elements and advances the offset, so one seed gives the same
/// numbers on every device and thread count, and the state can be saved and restored exactly.
/// </summary>
public sealed class RandomGenerator
{
    /// <summary>A generator at the start of the stream for <paramref name="seed"/>.</summary>
    public RandomGenerator(ulong seed, ulong offset = 0) { Seed = seed; Offset = offset; }

    /// <summary>The key of the stream.</summary>
    public ulong Seed { get; }

    /// <summary>The next unused 128-bit counter.</summary>
    public ulong Offset { get; private set; }

    private NdArray Draw(RandomKind kind, Shape shape, DType dtype, long high, Device? device, long words)
    {
        var r = (device ?? CpuDevice.Instance).Random(kind, Seed, Offset, shape, dtype, high);
        Offset += Philox.CountersFor(words);
        return r;
    }

    /// <summary>Uniform numbers on [low, high).</summary>
    public NdArray Uniform(Shape shape, double low = 0, double high = 1, DType dtype = DType.Float32, Device? device = null)
    {
        var u = Draw(RandomKind.Uniform, shape, dtype, 0, device, shape.Size);
        return low == 0 && high == 1 ? u : u * (high - low) + low;
    }

    /// <summary>Normal numbers with the given mean and standard deviation.</summary>
    public NdArray Normal(Shape shape, double mean = 0, double std = 1, DType dtype = DType.Float32, Device? device = null)
    {
        var z = Draw(RandomKind.Normal, shape, dtype, 0, device, (shape.Size + 1) / 2 * 2);
        return mean == 0 && std == 1 ? z : z * std + mean;
    }

    /// <summary>±1 with equal probability.</summary>
    public NdArray Rademacher(Shape shape, DType dtype = DType.Float32, Device? device = null) =>
        Draw(RandomKind.Rademacher, shape, dtype, 0, device, shape.Size);

    /// <summary>int64 values uniform on [0, high).</summary>
    public NdArray Integers(Shape shape, long high, Device? device = null)
    {
        if (high <= 0) throw new ArgumentOutOfRangeException(nameof(high), high, "Integers: high must be positive.");
        return Draw(RandomKind.Integers, shape, DType.Int64, high, device, shape.Size);
    }
}
