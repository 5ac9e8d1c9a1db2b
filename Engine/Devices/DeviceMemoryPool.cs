using ILGPU;
using ILGPU.Runtime;

namespace Curvature.Engine;

/// <summary>
/// A caching allocator for one accelerator: buffers are kept by (rounded) byte size and handed out again
/// when an array that used one becomes unreachable. Reuse is safe in stream order: every launch goes to the
/// accelerator's one default stream, so work queued by an earlier owner runs before anything a later owner
/// queues, and <see cref="AcceleratorDevice"/> runs each op under its lock, so with several threads a later owner's
/// work still comes after the earlier owner's whole op (a buffer can come back while its op is reading it). The pool holds every buffer it made, so none is finalised behind its back; the arrays'
/// <see cref="AcceleratorStorage"/> give theirs back from their finalizers. On out-of-memory it frees its
/// idle buffers, runs the garbage collector so unreachable arrays return theirs, and tries once more.
/// </summary>
public sealed class DeviceMemoryPool : IDisposable
{
    private readonly Accelerator accelerator;
    private readonly Dictionary<long, Stack<MemoryBuffer1D<byte, Stride1D.Dense>>> idle = [];
    // Every buffer handed out and not yet returned: this strong reference keeps ILGPU's own finalizer from
    // freeing a buffer in the same collection that finalises the array that used it.
    private readonly HashSet<MemoryBuffer1D<byte, Stride1D.Dense>> lent = new(ReferenceEqualityComparer.Instance);
    private readonly Lock gate = new();
    private bool disposed;

    internal DeviceMemoryPool(Accelerator accelerator, string deviceName)
    {
        this.accelerator = accelerator;
        DeviceName = deviceName;
    }

    private string DeviceName { get; }

    /// <summary>Bytes in buffers handed out and not yet returned.</summary>
    public long BytesInUse { get; private set; }

    /// <summary>Bytes in idle buffers kept for reuse.</summary>
    public long BytesCached { get; private set; }

    /// <summary>Allocations served from the cache since the pool was made.</summary>
    public long Reused { get; private set; }

    /// <summary>Allocations that asked the driver for new memory.</summary>
    public long Allocated { get; private set; }

    /// <summary>The size class of a request: 512-byte steps up to 1 MiB, 64 KiB steps beyond.</summary>
    public static long SizeClass(long bytes)
    {
        long step = bytes <= 1 << 20 ? 512 : 64 << 10;
        return Math.Max(step, (bytes + step - 1) / step * step);
    }

    /// <summary>A buffer of at least <paramref name="bytes"/> bytes (<paramref name="what"/> names it in an out-of-memory error).</summary>
    public MemoryBuffer1D<byte, Stride1D.Dense> Rent(long bytes, Func<string> what)
    {
        long size = SizeClass(bytes);
        lock (gate)
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            if (idle.TryGetValue(size, out var stack) && stack.Count > 0)
            {
                BytesCached -= size;
                BytesInUse += size;
                Reused++;
                var reused = stack.Pop();
                lent.Add(reused);
                return reused;
            }
        }
        var buffer = TryAllocate(size);
        if (buffer is null)
        {
            // Flush and retry: idle buffers first, then whatever unreachable arrays still hold.
            Flush();
            GC.Collect();
            GC.WaitForPendingFinalizers();
            Flush();
            buffer = TryAllocate(size) ?? throw new DeviceMemoryException(DeviceName, what(), size, FreeBytes());
        }
        lock (gate)
        {
            BytesInUse += size;
            Allocated++;
            lent.Add(buffer);
        }
        return buffer;
    }

    private MemoryBuffer1D<byte, Stride1D.Dense>? TryAllocate(long size)
    {
        try { return accelerator.Allocate1D<byte>(size); }
        catch (Exception e) when (e is OutOfMemoryException or AcceleratorException) { return null; }
    }

    /// <summary>Takes a buffer back for reuse (called from finalizers, so it never throws).</summary>
    internal void Return(MemoryBuffer1D<byte, Stride1D.Dense> buffer)
    {
        lock (gate)
        {
            if (disposed || !lent.Remove(buffer)) return;
            long size = buffer.Length;
            BytesInUse -= size;
            BytesCached += size;
            if (!idle.TryGetValue(size, out var stack)) idle[size] = stack = new Stack<MemoryBuffer1D<byte, Stride1D.Dense>>();
            stack.Push(buffer);
        }
    }

    /// <summary>Frees every idle buffer (after the stream has finished with them).</summary>
    public void Flush()
    {
        List<MemoryBuffer1D<byte, Stride1D.Dense>> release;
        lock (gate)
        {
            release = idle.Values.SelectMany(s => s).ToList();
            idle.Clear();
            BytesCached = 0;
        }
        if (release.Count == 0) return;
        accelerator.Synchronize();
        foreach (var b in release) b.Dispose();
    }

    /// <summary>Free device memory in bytes where the driver reports it, else −1.</summary>
    public long FreeBytes()
    {
        try
        {
            return accelerator is ILGPU.Runtime.Cuda.CudaAccelerator cuda ? cuda.GetFreeMemory() : -1;
        }
        catch (AcceleratorException) { return -1; }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        Flush();
        lock (gate) disposed = true;
    }
}

/// <summary>The device ran out of memory even after the pool was flushed and unreachable arrays collected.</summary>
public sealed class DeviceMemoryException(string device, string what, long bytes, long freeBytes) : InvalidOperationException(
    $"Out of memory on {device} allocating {what} ({Mib(bytes)}). " +
    (freeBytes >= 0 ? $"The device has {Mib(freeBytes)} free. " : "") +
    "Use a smaller --batch, or --device cpu.")
{
    private static string Mib(long bytes) => $"{bytes / (1024.0 * 1024.0):F1} MiB";
}
