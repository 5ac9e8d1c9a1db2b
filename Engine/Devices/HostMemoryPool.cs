namespace Curvature.Engine;

/// <summary>
/// A caching allocator for the CPU's large arrays. A training step allocates and drops hundreds of megabytes of
/// activations; left to the garbage collector, every one is a fresh large-object allocation whose pages the GC has
/// given back to the kernel, so each first touch is a page fault (measured: 600,000 minor faults and a third of
/// the CPU time in the kernel for a few ResNet-20 steps). The pool keeps arrays of 64 KiB and more by dtype and
/// size class; an array's <see cref="CpuStorage"/> gives its buffer back from its finalizer. When requests keep
/// missing while the pool has handed out much new memory, it runs the collector once so that unreachable arrays
/// return theirs (cheap: the heap holds few objects, the bytes are in the pool). Idle buffers beyond a quarter of
/// the machine's memory are dropped rather than kept.
/// </summary>
public static class HostMemoryPool
{
    /// <summary>Arrays smaller than this many bytes are ordinary allocations (the GC's young generation is cheap).</summary>
    public const int MinimumBytes = 64 << 10;

    private static readonly Lock Gate = new();
    private static readonly Dictionary<(DType, int), Stack<Array>> Idle = [];
    private static long lentSinceCollect;
    private static long idleLimit, collectAfter;
    private static long collectTicks;

    /// <summary>The most bytes kept in idle buffers: a quarter of the memory the GC may use (at least 256 MiB).</summary>
    public static long IdleLimitBytes
    {
        get
        {
            if (idleLimit == 0) idleLimit = Math.Max(256L << 20, GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / 4);
            return idleLimit;
        }
    }

    /// <summary>
    /// Bytes handed out between the collections the pool asks for: a thirty-second of the memory the GC may use, from
    /// 128 to 512 MiB. A ResNet-20 training step (batch 128) hands out about 1.5 GB: at 128 MiB that was three
    /// collections and 4.1–4.7 ms a step, at 512 MiB one and 2.0–2.4 ms, with no more fresh allocations.
    /// </summary>
    public static long CollectAfterBytes
    {
        get
        {
            if (collectAfter == 0) collectAfter = Math.Clamp(GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / 32, 128L << 20, 512L << 20);
            return collectAfter;
        }
    }

    /// <summary>Collections the pool has run to get unreachable arrays' buffers back.</summary>
    public static long Collections { get; private set; }

    /// <summary>Time spent in those collections and in waiting for the finalizers that return the buffers.</summary>
    public static TimeSpan CollectionTime => TimeSpan.FromSeconds(Interlocked.Read(ref collectTicks) / (double)System.Diagnostics.Stopwatch.Frequency);

    /// <summary>Bytes in idle buffers kept for reuse.</summary>
    public static long BytesCached { get; private set; }

    /// <summary>Requests served from the pool since the process started.</summary>
    public static long Reused { get; private set; }

    /// <summary>Requests that allocated a new array.</summary>
    public static long Allocated { get; private set; }

    /// <summary>The size class of a request in elements: 1/16 steps of the power of two below it, so at most 6 % is wasted.</summary>
    public static int SizeClass(long length)
    {
        if (length <= 16) return (int)length;
        int top = 63 - System.Numerics.BitOperations.LeadingZeroCount((ulong)length);
        long step = 1L << (top - 4);
        return checked((int)((length + step - 1) / step * step));
    }

    private static int ElementSize(DType dtype) => dtype == DType.Float32 ? 4 : 8;

    /// <summary>Whether arrays of this dtype and length come from the pool.</summary>
    public static bool Pools(DType dtype, long length) => length * ElementSize(dtype) >= MinimumBytes;

    /// <summary>An array of at least <paramref name="length"/> elements, uninitialized.</summary>
    internal static Array Rent(DType dtype, long length)
    {
        int size = SizeClass(length);
        long bytes = (long)size * ElementSize(dtype);
        if (TryTake(dtype, size, bytes) is { } reused) return reused;
        bool collect;
        lock (Gate) collect = lentSinceCollect > CollectAfterBytes;
        if (collect)
        {
            // Much was handed out since the last collection: most of it is likely unreachable by now (the last
            // step's activations), so one collection returns it instead of faulting in fresh pages.
            lock (Gate)
            {
                lentSinceCollect = 0;
                Collections++;
            }
            Interlocked.Add(ref collectTicks, FinalizingCollection.Run());
            if (TryTake(dtype, size, bytes) is { } returned) return returned;
        }
        lock (Gate)
        {
            lentSinceCollect += bytes;
            Allocated++;
        }
        return dtype switch
        {
            DType.Float32 => GC.AllocateUninitializedArray<float>(size),
            DType.Float64 => GC.AllocateUninitializedArray<double>(size),
            _ => GC.AllocateUninitializedArray<long>(size),
        };
    }

    private static Array? TryTake(DType dtype, int size, long bytes)
    {
        lock (Gate)
        {
            if (!Idle.TryGetValue((dtype, size), out var stack) || stack.Count == 0) return null;
            BytesCached -= bytes;
            lentSinceCollect += bytes;
            Reused++;
            return stack.Pop();
        }
    }

    /// <summary>Takes back a buffer whose array became unreachable (called from <see cref="CpuStorage"/>'s finalizer).</summary>
    internal static void Return(DType dtype, Array buffer)
    {
        long bytes = buffer.LongLength * ElementSize(dtype);
        lock (Gate)
        {
            if (BytesCached + bytes > IdleLimitBytes) return;
            if (!Idle.TryGetValue((dtype, buffer.Length), out var stack)) Idle[(dtype, buffer.Length)] = stack = new Stack<Array>();
            stack.Push(buffer);
            BytesCached += bytes;
        }
    }

    /// <summary>Drops every idle buffer (the collector frees them).</summary>
    public static void Trim()
    {
        lock (Gate)
        {
            Idle.Clear();
            BytesCached = 0;
        }
    }
}

/// <summary>
/// Keeps up to three arrays reachable until the end of a <c>using</c> scope: a CPU kernel reads its inputs through
/// spans, which keep the managed buffer alive but not the <see cref="CpuStorage"/> whose finalizer would hand that
/// buffer to the next allocation. Every <see cref="CpuDevice"/> operation holds its inputs this way.
/// </summary>
internal readonly ref struct KeepAlive(object? a, object? b = null, object? c = null)
{
    private readonly object? a = a, b = b, c = c;

    public void Dispose()
    {
        GC.KeepAlive(a);
        GC.KeepAlive(b);
        GC.KeepAlive(c);
    }
}
