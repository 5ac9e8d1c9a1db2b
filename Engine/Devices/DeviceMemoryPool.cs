using ILGPU;
using ILGPU.Runtime;

namespace Curvature.Engine;

/// <summary>
/// A caching allocator for one accelerator: buffers are kept by (rounded) byte size and handed out again
/// when an array that used one becomes unreachable. Reuse is safe in stream order: every launch goes to the
/// accelerator's one default stream, so work queued by an earlier owner runs before anything a later owner
/// queues, and <see cref="AcceleratorDevice"/> runs each op under its lock, so with several threads a later owner's
/// work still comes after the earlier owner's whole op (a buffer can come back while its op is reading it). The pool
/// holds every buffer it made, so none is finalized behind its back; the arrays' <see cref="AcceleratorStorage"/>
/// give theirs back from their finalizers.
/// </summary>
/// <remarks>
/// Device memory is invisible to the garbage collector, and a training step makes few managed objects, so left
/// alone the collector would run every few hundred steps: until then each step's arrays stay unreturned and the next
/// step allocates afresh (measured on ResNet-20: 597 new buffers a step, 51 MiB at batch 2, until a collection
/// happened to run). So, as <see cref="HostMemoryPool"/> does, a request that misses the cache after
/// <see cref="CollectAfterBytes"/> have been handed out since the last collection runs one, and takes what the last
/// steps' unreachable arrays give back. On out-of-memory it collects likewise, then frees its idle buffers and tries
/// once more.
/// </remarks>
public sealed class DeviceMemoryPool : IDisposable
{
    private readonly Accelerator accelerator;
    private readonly Dictionary<long, Stack<MemoryBuffer1D<byte, Stride1D.Dense>>> idle = [];
    // Every buffer handed out and not yet returned: this strong reference keeps ILGPU's own finalizer from
    // freeing a buffer in the same collection that finalizes the array that used it.
    private readonly HashSet<MemoryBuffer1D<byte, Stride1D.Dense>> lent = new(ReferenceEqualityComparer.Instance);
    private readonly Lock gate = new();
    private bool disposed;

    private long handedOutSinceCollect;
    private long collectTicks;

    internal DeviceMemoryPool(Accelerator accelerator, string deviceName)
    {
        this.accelerator = accelerator;
        DeviceName = deviceName;
        // ILGPU's CPU accelerator reports no memory size of its own: its buffers are the host's memory.
        CollectAfterBytes = accelerator is ILGPU.Runtime.CPU.CPUAccelerator
            ? HostMemoryPool.CollectAfterBytes
            : Math.Max(256L << 20, accelerator.MemorySize / 16);
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

    /// <summary>
    /// Bytes handed out (new or reused) after which a request that misses the cache first runs the garbage collector:
    /// a sixteenth of the device's memory (5 GB on an 80 GB H100), at least 256 MiB; on ILGPU's CPU accelerator, the
    /// host pool's <see cref="HostMemoryPool.CollectAfterBytes"/>. Larger means fewer collections and more memory
    /// held by unreachable arrays between them.
    /// </summary>
    public long CollectAfterBytes { get; set; }

    /// <summary>Collections the pool has run to get unreachable arrays' buffers back.</summary>
    public long Collections { get; private set; }

    /// <summary>Time spent in those collections and in the finalizers that return the buffers.</summary>
    public TimeSpan CollectionTime => TimeSpan.FromSeconds(Interlocked.Read(ref collectTicks) / (double)System.Diagnostics.Stopwatch.Frequency);

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
        if (TryTake(size) is { } cached) return cached;
        bool collect;
        lock (gate) collect = handedOutSinceCollect > CollectAfterBytes;
        // Much was handed out since the last collection: most of it is likely unreachable by now (the last step's
        // arrays), and one collection returns it instead of growing the device's footprint.
        if (collect)
        {
            Collect();
            if (TryTake(size) is { } returned) return returned;
        }
        var buffer = TryAllocate(size);
        if (buffer is null)
        {
            // Out of memory: what unreachable arrays hold first, then the idle buffers of other sizes.
            Collect();
            if (TryTake(size) is { } freed) return freed;
            Flush();
            buffer = TryAllocate(size) ?? throw new DeviceMemoryException(DeviceName, what(), size, FreeBytes());
        }
        lock (gate)
        {
            BytesInUse += size;
            Allocated++;
            handedOutSinceCollect += size;
            lent.Add(buffer);
        }
        return buffer;
    }

    private MemoryBuffer1D<byte, Stride1D.Dense>? TryTake(long size)
    {
        lock (gate)
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            if (!idle.TryGetValue(size, out var stack) || stack.Count == 0) return null;
            BytesCached -= size;
            BytesInUse += size;
            handedOutSinceCollect += size;
            Reused++;
            var reused = stack.Pop();
            lent.Add(reused);
            return reused;
        }
    }

    /// <summary>Runs the collector and the finalizers, which give unreachable arrays' buffers back.</summary>
    private void Collect()
    {
        lock (gate)
        {
            handedOutSinceCollect = 0;
            Collections++;
        }
        Interlocked.Add(ref collectTicks, FinalizingCollection.Run());
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
