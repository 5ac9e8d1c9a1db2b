using ILGPU;
using ILGPU.Runtime;

namespace Curvature.Engine;

/// <summary>
/// Memory on an <see cref="AcceleratorDevice"/>: a pooled buffer viewed as elements of one dtype. When the
/// storage becomes unreachable its finalizer gives the buffer back to the device's pool.
/// </summary>
public sealed class AcceleratorStorage : Storage
{
    private readonly MemoryBuffer1D<byte, Stride1D.Dense> buffer;
    private readonly AcceleratorDevice device;

    internal AcceleratorStorage(AcceleratorDevice device, DType dtype, long length, MemoryBuffer1D<byte, Stride1D.Dense> buffer)
    {
        this.device = device;
        this.buffer = buffer;
        DType = dtype;
        Length = length;
    }

    /// <summary>Returns the buffer to the pool.</summary>
    ~AcceleratorStorage() => device.Pool.Return(buffer);

    /// <inheritdoc/>
    public override Device Device => device;

    /// <inheritdoc/>
    public override DType DType { get; }

    /// <inheritdoc/>
    public override long Length { get; }

    /// <summary>The elements [offset, offset + length) as a typed view.</summary>
    public ArrayView<T> View<T>(long offset, long length) where T : unmanaged
    {
        GC.KeepAlive(this);
        return buffer.View.AsContiguous().Cast<T>().SubView(offset, length);
    }
}
