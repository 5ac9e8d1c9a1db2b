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

/// <summary>
/// Host memory: a managed array of float, double or long. Arrays the CPU device allocates come from
/// <see cref="HostMemoryPool"/> when large and go back to it when this storage is collected, so a span or pointer
/// into <see cref="Data"/> is valid only while the storage (or an array viewing it) is reachable: keep it alive
/// (<see cref="GC.KeepAlive(object?)"/>) for as long as the span is used.
/// </summary>
public sealed class CpuStorage : Storage
{
    private readonly bool pooled;

    /// <summary>Wraps an existing array (not copied, never pooled).</summary>
    public CpuStorage(Array data)
    {
        Data = data;
        Length = data.LongLength;
        DType = data switch
        {
            float[] => DType.Float32,
            double[] => DType.Float64,
            long[] => DType.Int64,
            _ => throw new ArgumentException($"CPU storage holds float[], double[] or long[], got {data.GetType().Name}.", nameof(data)),
        };
        GC.SuppressFinalize(this);
    }

    /// <summary>New uninitialized memory for <paramref name="length"/> elements, from the pool when large.</summary>
    internal CpuStorage(DType dtype, long length)
    {
        DType = dtype;
        Length = length;
        pooled = HostMemoryPool.Pools(dtype, length);
        Data = pooled ? HostMemoryPool.Rent(dtype, length) : dtype switch
        {
            DType.Float32 => GC.AllocateUninitializedArray<float>(checked((int)length)),
            DType.Float64 => GC.AllocateUninitializedArray<double>(checked((int)length)),
            _ => GC.AllocateUninitializedArray<long>(checked((int)length)),
        };
        if (!pooled) GC.SuppressFinalize(this);
    }

    /// <summary>Gives a pooled buffer back.</summary>
    ~CpuStorage()
    {
        if (pooled) HostMemoryPool.Return(DType, Data);
    }

    /// <summary>The managed array (a pooled one may be longer than <see cref="Length"/>).</summary>
    public Array Data { get; }

    /// <inheritdoc/>
    public override Device Device => CpuDevice.Instance;

    /// <inheritdoc/>
    public override DType DType { get; }

    /// <inheritdoc/>
    public override long Length { get; }
}
