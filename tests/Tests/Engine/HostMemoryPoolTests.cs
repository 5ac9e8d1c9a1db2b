using System.Runtime.CompilerServices;
using Curvature.Engine;
using FsCheck;
using FsCheck.Fluent;

namespace Curvature.Tests.Engine;

/// <summary>The CPU's caching allocator: size classes, reuse of a collected array's buffer, what is never pooled.</summary>
public class HostMemoryPoolTests
{
    [Fact]
    public void Size_classes_cover_the_request_and_waste_at_most_a_sixteenth()
    {
        var prop = Prop.ForAll(Gen.Choose(1, int.MaxValue / 2).ToArbitrary(), n =>
        {
            long c = HostMemoryPool.SizeClass(n);
            Assert.True(c >= n, $"class {c} < request {n}");
            Assert.True(c - n <= n / 16 + 1, $"class {c} wastes more than 1/16 of {n}");
            Assert.Equal(c, HostMemoryPool.SizeClass(c)); // a class is its own class: returned buffers land where requests look
        });
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(500), prop);
    }

    // Not inlined, so the array and its storage are unreachable once it returns (the weak reference is all that is left).
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static WeakReference DropArray(Shape shape)
    {
        var a = NdArray.Full(shape, 7.0, DType.Float64);
        Assert.Equal(shape.Size, a.Storage.Length);
        return new WeakReference(((CpuStorage)a.Storage).Data, trackResurrection: true); // the finalizer resurrects it into the pool
    }

    [Fact]
    public void A_collected_arrays_buffer_serves_the_next_request_of_its_class_and_keeps_nothing_of_its_values()
    {
        // An element count no other test uses, so no other test can take the buffer in between.
        var shape = new Shape(3, 104_729);
        var buffer = DropArray(shape);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        Assert.True(buffer.IsAlive, "the pool holds a returned buffer");
        var b = NdArray.Zeros(shape, DType.Float64);
        Assert.Same(buffer.Target, ((CpuStorage)b.Storage).Data);
        Assert.Equal(shape.Size, b.Storage.Length);
        Assert.All(b.ToArray<double>(), v => Assert.Equal(0.0, v));
        Assert.Equal(shape.Size, b.ToArray<double>().Length);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static WeakReference WrapAndDrop()
    {
        var mine = new float[1 << 20];
        var wrapped = CpuDevice.Instance.FromHost(mine, new Shape(1 << 20)); // wraps, no copy
        Assert.Same(mine, ((CpuStorage)wrapped.Storage).Data);
        return new WeakReference(mine);
    }

    [Fact]
    public void The_pool_collects_after_a_thirty_second_of_memory_handed_out_between_128_and_512_MiB()
    {
        long total = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        Assert.Equal(Math.Clamp(total / 32, 128L << 20, 512L << 20), HostMemoryPool.CollectAfterBytes);
        Assert.InRange(HostMemoryPool.CollectAfterBytes, 128L << 20, 512L << 20);
    }

    [Fact]
    public void Small_arrays_and_wrapped_user_arrays_are_never_pooled()
    {
        Assert.False(HostMemoryPool.Pools(DType.Float32, HostMemoryPool.MinimumBytes / 4 - 1));
        Assert.True(HostMemoryPool.Pools(DType.Float32, HostMemoryPool.MinimumBytes / 4));
        var weak = WrapAndDrop();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        Assert.False(weak.IsAlive, "a user's array is not kept by the pool");
    }
}
