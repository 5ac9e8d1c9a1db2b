using System.Collections.Concurrent;
using System.Reflection;
using ILGPU;
using ILGPU.Runtime;

namespace Curvature.Kernels.Gpu;

/// <summary>
/// Kernels compiled once per accelerator and kept, and the launch shapes that suit it. Every kernel of this
/// layer is an explicitly grouped kernel: element-wise ones loop over their range with a grid stride, so one
/// launch covers any length with as many groups as the device keeps busy (ILGPU's CPU accelerator, which
/// runs each group on emulated threads, gets one group; a GPU gets every multiprocessor's share).
/// </summary>
public sealed class KernelCache
{
    private readonly ConcurrentDictionary<MethodInfo, Delegate> kernels = new();

    /// <summary>Kernels for <paramref name="accelerator"/>.</summary>
    public KernelCache(Accelerator accelerator)
    {
        Accelerator = accelerator;
        // Power of two (the tree reductions halve it), at most 256, at most what the device allows.
        int g = 1;
        while (g * 2 <= Math.Min(256, accelerator.MaxNumThreadsPerGroup)) g *= 2;
        GroupSize = g;
        MaxGroups = Math.Max(1, accelerator.NumMultiprocessors * Math.Max(1, accelerator.MaxNumThreadsPerMultiprocessor / g));
        WideGroups = g >= 256;
    }

    /// <summary>The accelerator the kernels run on.</summary>
    public Accelerator Accelerator { get; }

    /// <summary>Threads per group for element-wise kernels and reductions (a power of two).</summary>
    public int GroupSize { get; }

    /// <summary>Most groups a grid-stride launch uses.</summary>
    public int MaxGroups { get; }

    /// <summary>True when groups of 256 threads are allowed (a GPU): the GEMM then uses <see cref="GpuLargeTile"/>
    /// and <see cref="GpuSmallTile"/>, else (ILGPU's CPU accelerator) <see cref="CpuLargeTile"/> and
    /// <see cref="CpuSmallTile"/>.</summary>
    public bool WideGroups { get; }

    /// <summary>A grid-stride launch over <paramref name="count"/> items.</summary>
    public KernelConfig Stride(long count) =>
        new((int)Math.Clamp((count + GroupSize - 1) / GroupSize, 1, MaxGroups), GroupSize);

    /// <summary>One group per item, with a float64 scratch of one value per thread for a tree reduction.</summary>
    public KernelConfig GroupPerItem(int items) =>
        new(new Index1D(Math.Max(1, items)), new Index1D(GroupSize), SharedMemoryConfig.RequestDynamic<double>(GroupSize));

    /// <summary>
    /// Kernels asked for since the cache was made. The device launches what <see cref="Load{T1}(Action{T1})"/>
    /// returns at once, every time, so this counts launches: each costs the host microseconds (ILGPU marshals the
    /// arguments; CUDA queues the launch), which adds up in a training step of a thousand small kernels.
    /// </summary>
    public long Launches => Interlocked.Read(ref launches);

    private long launches;
    private readonly ConcurrentDictionary<MethodInfo, long> perKernel = new();

    /// <summary>
    /// Launches so far per kernel, named by class and method (<c>Normalization.ScaleShift</c>; a generic kernel's
    /// instances add up): where a step's launches go.
    /// </summary>
    public IReadOnlyDictionary<string, long> LaunchesByKernel =>
        perKernel.GroupBy(p => $"{p.Key.DeclaringType?.Name}.{p.Key.Name}").ToDictionary(g => g.Key, g => g.Sum(p => p.Value));

    /// <summary>The compiled kernel for <paramref name="kernel"/>, compiling it on first use.</summary>
    public TDelegate Get<TDelegate>(Delegate kernel, Func<Accelerator, TDelegate> load) where TDelegate : Delegate
    {
        Interlocked.Increment(ref launches);
        perKernel.AddOrUpdate(kernel.Method, 1, (_, c) => c + 1);
        return (TDelegate)kernels.GetOrAdd(kernel.Method, _ => load(Accelerator));
    }

    /// <summary>Loads a kernel of one parameter.</summary>
    public Action<KernelConfig, T1> Load<T1>(Action<T1> k) where T1 : struct =>
        Get(k, a => a.LoadStreamKernel(k));
    /// <summary>Loads a kernel of two parameters.</summary>
    public Action<KernelConfig, T1, T2> Load<T1, T2>(Action<T1, T2> k) where T1 : struct where T2 : struct =>
        Get(k, a => a.LoadStreamKernel(k));
    /// <summary>Loads a kernel of three parameters.</summary>
    public Action<KernelConfig, T1, T2, T3> Load<T1, T2, T3>(Action<T1, T2, T3> k) where T1 : struct where T2 : struct where T3 : struct =>
        Get(k, a => a.LoadStreamKernel(k));
    /// <summary>Loads a kernel of four parameters.</summary>
    public Action<KernelConfig, T1, T2, T3, T4> Load<T1, T2, T3, T4>(Action<T1, T2, T3, T4> k)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct =>
        Get(k, a => a.LoadStreamKernel(k));
    /// <summary>Loads a kernel of five parameters.</summary>
    public Action<KernelConfig, T1, T2, T3, T4, T5> Load<T1, T2, T3, T4, T5>(Action<T1, T2, T3, T4, T5> k)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct =>
        Get(k, a => a.LoadStreamKernel(k));
    /// <summary>Loads a kernel of six parameters.</summary>
    public Action<KernelConfig, T1, T2, T3, T4, T5, T6> Load<T1, T2, T3, T4, T5, T6>(Action<T1, T2, T3, T4, T5, T6> k)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct =>
        Get(k, a => a.LoadStreamKernel(k));
    /// <summary>Loads a kernel of seven parameters.</summary>
    public Action<KernelConfig, T1, T2, T3, T4, T5, T6, T7> Load<T1, T2, T3, T4, T5, T6, T7>(Action<T1, T2, T3, T4, T5, T6, T7> k)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct where T7 : struct =>
        Get(k, a => a.LoadStreamKernel(k));
    /// <summary>Loads a kernel of eight parameters.</summary>
    public Action<KernelConfig, T1, T2, T3, T4, T5, T6, T7, T8> Load<T1, T2, T3, T4, T5, T6, T7, T8>(Action<T1, T2, T3, T4, T5, T6, T7, T8> k)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct where T7 : struct where T8 : struct =>
        Get(k, a => a.LoadStreamKernel(k));

    /// <summary>Loads a kernel of nine parameters.</summary>
    public Action<KernelConfig, T1, T2, T3, T4, T5, T6, T7, T8, T9> Load<T1, T2, T3, T4, T5, T6, T7, T8, T9>(Action<T1, T2, T3, T4, T5, T6, T7, T8, T9> k)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct where T7 : struct where T8 : struct where T9 : struct =>
        Get(k, a => a.LoadStreamKernel(k));

    /// <summary>The grid-stride loop's first index and step for the current thread.</summary>
    internal static int First => Grid.GlobalIndex.X;

    /// <summary>The grid-stride loop's step.</summary>
    internal static int Step => Grid.DimX * Group.DimX;
}
