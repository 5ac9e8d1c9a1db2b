namespace Curvature.Engine;

/// <summary>A block of memory on a device holding elements of one <see cref="DType"/>.</summary>
public abstract class Storage
{
    /// <summary>The device that owns the memory.</summary>
    public abstract Device Device { get; }

    /// <summary>Element type.</summary>
    public abstract DType DType { get; }

    /// <summary>Number of elements.</summary>
    public abstract long Length { get; }
}

/// <summary>Host memory: a managed array of float, double or long.</summary>
public sealed class CpuStorage : Storage
{
    /// <summary>Wraps an existing array (not copied).</summary>
    public CpuStorage(Array data)
    {
        Data = data;
        DType = data switch
        {
            float[] => DType.Float32,
            double[] => DType.Float64,
            long[] => DType.Int64,
            _ => throw new ArgumentException($"CPU storage holds float[], double[] or long[], got {data.GetType().Name}.", nameof(data)),
        };
    }

    /// <summary>The managed array.</summary>
    public Array Data { get; }

    /// <inheritdoc/>
    public override Device Device => CpuDevice.Instance;

    /// <inheritdoc/>
    public override DType DType { get; }

    /// <inheritdoc/>
    public override long Length => Data.LongLength;
}
