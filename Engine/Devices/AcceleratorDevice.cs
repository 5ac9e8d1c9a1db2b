using Curvature.Kernels;
using Curvature.Kernels.Cpu;
using Curvature.Kernels.Gpu;
using ILGPU;
using ILGPU.Runtime;
using GpuElementWise = Curvature.Kernels.Gpu.ElementWise;
using GpuGemm = Curvature.Kernels.Gpu.Gemm;
using GpuLayout = Curvature.Kernels.Gpu.Layout;
using GpuNormalization = Curvature.Kernels.Gpu.Normalization;
using GpuPhilox = Curvature.Kernels.Gpu.Philox;
using GpuReduction = Curvature.Kernels.Gpu.Reduction;
using GpuSoftmax = Curvature.Kernels.Gpu.Softmax;

namespace Curvature.Engine;

/// <summary>
/// An ILGPU accelerator (CUDA, OpenCL, or ILGPU's CPU accelerator, which runs the same kernels on emulated
/// GPU threads so they can be tested without a GPU) behind the <see cref="Device"/> contract. Ops queue
/// kernels on the accelerator's default stream and return; only reading values (<see cref="ToHost"/>, a
/// <see cref="Dot"/> for the host) waits for them. Memory comes from a caching <see cref="DeviceMemoryPool"/>.
/// Each op allocates its outputs before it takes any view, so a buffer the pool recycles from an
/// unreachable input is only ever reused by work queued after the input's last reader.
/// A device may be shared by threads: each op runs under the device's lock from its first allocation to its last
/// launch. Without it, an input that became unreachable while one thread's op still read it gave its buffer back
/// (from its finalizer) to another thread's op, whose writes landed before the read: a copy from the host runs at
/// once on ILGPU's CPU accelerator, and on a GPU another thread's launches can queue between one op's launches
/// (wrong values in CI when two test classes shared the device).
/// </summary>
public sealed class AcceleratorDevice : Device, IDisposable
{
    private readonly KernelCache kernels;
    // Reentrant: ops that call other ops (MatMulSum, Normalize) take it again.
    private readonly Lock gate = new();

    /// <summary>Wraps an accelerator (the device takes ownership and disposes it).</summary>
    public AcceleratorDevice(Accelerator accelerator, string name)
    {
        Accelerator = accelerator;
        Name = name;
        kernels = new KernelCache(accelerator);
        Pool = new DeviceMemoryPool(accelerator, name);
    }

    /// <inheritdoc/>
    public override string Name { get; }

    /// <summary>The ILGPU accelerator.</summary>
    public Accelerator Accelerator { get; }

    /// <summary>The caching allocator.</summary>
    public DeviceMemoryPool Pool { get; }

    /// <summary>Kernels launched on this device since it was opened (from every thread).</summary>
    public long KernelLaunches => kernels.Launches;

    /// <summary>Kernel launches so far per kernel, by class and method name (see <see cref="KernelCache.LaunchesByKernel"/>).</summary>
    public IReadOnlyDictionary<string, long> KernelLaunchesByKernel => kernels.LaunchesByKernel;

    private long usefulMultiplyAdds, issuedMultiplyAdds;

    /// <summary>
    /// Multiply-adds of the matrix products launched so far: those the products need
    /// (<see cref="GpuGemm.UsefulMultiplyAdds"/>) and those their blocks issue, padding included
    /// (<see cref="GpuGemm.IssuedMultiplyAdds{C}"/>). Their ratio is the work a tiling
    /// wastes on products that do not fill its blocks.
    /// </summary>
    public (long Useful, long Issued) GemmMultiplyAdds => (Interlocked.Read(ref usefulMultiplyAdds), Interlocked.Read(ref issuedMultiplyAdds));

    /// <summary>Waits for every queued kernel.</summary>
    public void Synchronize()
    {
        using var turn = gate.EnterScope();
        Accelerator.Synchronize();
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        using var turn = gate.EnterScope();
        Accelerator.Synchronize();
        Pool.Dispose();
        Accelerator.Dispose();
    }

    // ---------------------------------------------------------------- memory

    /// <inheritdoc/>
    public override Storage Allocate(DType dtype, long length)
    {
        using var turn = gate.EnterScope();
        long bytes = Math.Max(1, length) * dtype.Size();
        var buffer = Pool.Rent(bytes, () => $"a {dtype.Name()} array of {length:N0} elements");
        return new AcceleratorStorage(this, dtype, length, buffer);
    }

    private NdArray New(Shape shape, DType dtype) => new(Allocate(dtype, shape.Size), 0, shape);

    private static ArrayView<T> V<T>(NdArray x) where T : unmanaged =>
        ((AcceleratorStorage)x.Storage).View<T>(x.Offset, x.Size);

    // ---------------------------------------------------------------- the launch surface
    // What a kernel's owner outside Engine (an optimizer's fused update) needs to run it here: the compiled-kernel
    // cache and its launch shapes, the gate that orders launches, and views of arrays.

    /// <summary>The kernels compiled for this accelerator and their launch shapes (each load counts as a launch).</summary>
    public KernelCache CompiledKernels => kernels;

    /// <summary>Takes the device's launch gate: hold the scope while allocating results and launching kernels.</summary>
    public Lock.Scope EnterLaunch() => gate.EnterScope();

    /// <summary>The device view of an array of this accelerator (its elements from its offset, <see cref="NdArray.Size"/> of them).</summary>
    public static ArrayView<T> View<T>(NdArray x) where T : unmanaged => V<T>(x);

    /// <inheritdoc/>
    public override NdArray FromHost(Array data, Shape shape)
    {
        using var turn = gate.EnterScope();
        var r = New(shape, DTypeOf(data));
        if (shape.Size == 0) return r;
        HostTransfers.Write(shape.Size * r.DType.Size());
        switch (data)
        {
            case float[] f: CopyIn(V<float>(r), f); break;
            case double[] d: CopyIn(V<double>(r), d); break;
            case long[] l: CopyIn(V<long>(r), l); break;
        }
        return r;
    }

    // ILGPU's CopyFromCPU and CopyToCPU take a reference and make a raw pointer of it without pinning what it
    // points into: a garbage collection during the copy (from any thread) could move the array, and the copy then
    // read or wrote the array's old place. Seen as a corrupted input or a zero result about once in a few thousand
    // copies while another thread collected (DeviceConformanceTests' transfer check under collections). So each copy
    // pins the array for as long as ILGPU holds the pointer.
    private static unsafe void CopyIn<T>(ArrayView<T> into, T[] from) where T : unmanaged
    {
        fixed (T* p = from) into.CopyFromCPU(ref *p, from.LongLength);
    }

    private static unsafe T[] CopyOut<T>(ArrayView<T> from, long length) where T : unmanaged
    {
        var a = new T[length];
        if (length > 0)
            fixed (T* p = a) from.CopyToCPU(ref *p, length);
        return a;
    }

    private static DType DTypeOf(Array data) => data switch
    {
        float[] => DType.Float32,
        double[] => DType.Float64,
        long[] => DType.Int64,
        _ => throw new ArgumentException($"Device arrays hold float[], double[] or long[], got {data.GetType().Name}.", nameof(data)),
    };

    /// <inheritdoc/>
    public override Array ToHost(NdArray x)
    {
        using var turn = gate.EnterScope();
        if (x.Size > 0) HostTransfers.Read(x.Size * x.DType.Size());
        switch (x.DType)
        {
            case DType.Float32: return CopyOut(V<float>(x), x.Size);
            case DType.Float64: return CopyOut(V<double>(x), x.Size);
            default: return CopyOut(V<long>(x), x.Size);
        }
    }

    // ---------------------------------------------------------------- element-wise

    /// <inheritdoc/>
    public override NdArray Full(Shape shape, DType dtype, double value)
    {
        using var turn = gate.EnterScope();
        var r = New(shape, dtype);
        if (shape.Size == 0) return r;
        var config = kernels.Stride(shape.Size);
        switch (dtype)
        {
            case DType.Float32: kernels.Load<ArrayView<float>, float>(GpuElementWise.Fill)(config, V<float>(r), (float)value); break;
            case DType.Float64: kernels.Load<ArrayView<double>, double>(GpuElementWise.Fill)(config, V<double>(r), value); break;
            default: kernels.Load<ArrayView<long>, long>(GpuElementWise.Fill)(config, V<long>(r), (long)value); break;
        }
        return r;
    }

    /// <inheritdoc/>
    public override NdArray Unary(UnaryOp op, NdArray x)
    {
        using var turn = gate.EnterScope();
        var r = New(x.Shape, x.DType);
        if (x.Size == 0) return r;
        var config = kernels.Stride(x.Size);
        if (x.DType == DType.Float32)
            kernels.Load<ArrayView<float>, ArrayView<float>, int>(GpuElementWise.Unary<float, Float32Kind>)(config, V<float>(x), V<float>(r), (int)op);
        else
            kernels.Load<ArrayView<double>, ArrayView<double>, int>(GpuElementWise.Unary<double, Float64Kind>)(config, V<double>(x), V<double>(r), (int)op);
        return r;
    }

    /// <inheritdoc/>
    public override NdArray Binary(BinaryOp op, NdArray x, NdArray y, Shape shape)
    {
        using var turn = gate.EnterScope();
        var r = New(shape, x.DType);
        if (shape.Size == 0) return r;
        Kernels.Cpu.ElementWise.Coalesce(shape.ToArray(), x.Shape.BroadcastStrides(shape), y.Shape.BroadcastStrides(shape), out var dims, out var xs, out var ys);
        var layout = StridedLayout.Of(dims, xs, ys);
        var config = kernels.Stride(shape.Size);
        if (x.DType == DType.Float32)
            kernels.Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, StridedLayout, int>(GpuElementWise.Binary<float, Float32Kind>)(config, V<float>(x), V<float>(y), V<float>(r), layout, (int)op);
        else
            kernels.Load<ArrayView<double>, ArrayView<double>, ArrayView<double>, StridedLayout, int>(GpuElementWise.Binary<double, Float64Kind>)(config, V<double>(x), V<double>(y), V<double>(r), layout, (int)op);
        return r;
    }

    /// <inheritdoc/>
    public override NdArray BinaryScalar(BinaryOp op, NdArray x, double c)
    {
        using var turn = gate.EnterScope();
        var r = New(x.Shape, x.DType);
        if (x.Size == 0) return r;
        var config = kernels.Stride(x.Size);
        if (x.DType == DType.Float32)
            kernels.Load<ArrayView<float>, ArrayView<float>, float, int>(GpuElementWise.BinaryScalar<float, Float32Kind>)(config, V<float>(x), V<float>(r), (float)c, (int)op);
        else
            kernels.Load<ArrayView<double>, ArrayView<double>, double, int>(GpuElementWise.BinaryScalar<double, Float64Kind>)(config, V<double>(x), V<double>(r), c, (int)op);
        return r;
    }

    /// <inheritdoc/>
    public override NdArray Where(NdArray cond, NdArray x, NdArray y, Shape shape)
    {
        using var turn = gate.EnterScope();
        var r = New(shape, x.DType);
        if (shape.Size == 0) return r;
        var layout = StridedLayout.Of(shape.ToArray(), cond.Shape.BroadcastStrides(shape), x.Shape.BroadcastStrides(shape), y.Shape.BroadcastStrides(shape));
        var config = kernels.Stride(shape.Size);
        if (x.DType == DType.Float32)
            kernels.Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, StridedLayout>(GpuElementWise.Where)(config, V<float>(cond), V<float>(x), V<float>(y), V<float>(r), layout);
        else
            kernels.Load<ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<double>, StridedLayout>(GpuElementWise.Where)(config, V<double>(cond), V<double>(x), V<double>(y), V<double>(r), layout);
        return r;
    }

    /// <inheritdoc/>
    public override NdArray BroadcastTo(NdArray x, Shape shape)
    {
        using var turn = gate.EnterScope();
        return Strided(x, shape, x.Shape.BroadcastStrides(shape));
    }

    private NdArray Strided(NdArray x, Shape shape, int[] strides)
    {
        var r = New(shape, x.DType);
        if (shape.Size == 0) return r;
        var contiguous = Kernels.Cpu.Layout.RowMajorStrides(shape.ToArray()).Select(s => (int)s).ToArray();
        Kernels.Cpu.ElementWise.Coalesce(shape.ToArray(), strides, contiguous, out var dims, out var xs, out _);
        var layout = StridedLayout.Of(dims, xs);
        var config = kernels.Stride(shape.Size);
        switch (x.DType)
        {
            case DType.Float32: kernels.Load<ArrayView<float>, ArrayView<float>, StridedLayout>(GpuLayout.Strided)(config, V<float>(x), V<float>(r), layout); break;
            case DType.Float64: kernels.Load<ArrayView<double>, ArrayView<double>, StridedLayout>(GpuLayout.Strided)(config, V<double>(x), V<double>(r), layout); break;
            default: kernels.Load<ArrayView<long>, ArrayView<long>, StridedLayout>(GpuLayout.Strided)(config, V<long>(x), V<long>(r), layout); break;
        }
        return r;
    }

    /// <inheritdoc/>
    public override NdArray Cast(NdArray x, DType dtype)
    {
        using var turn = gate.EnterScope();
        var r = New(x.Shape, dtype);
        if (x.Size == 0) return r;
        var config = kernels.Stride(x.Size);
        switch (x.DType, dtype)
        {
            case (DType.Float32, DType.Float32): kernels.Load<ArrayView<float>, ArrayView<float>>(GpuElementWise.Copy)(config, V<float>(x), V<float>(r)); break;
            case (DType.Float64, DType.Float64): kernels.Load<ArrayView<double>, ArrayView<double>>(GpuElementWise.Copy)(config, V<double>(x), V<double>(r)); break;
            case (DType.Int64, DType.Int64): kernels.Load<ArrayView<long>, ArrayView<long>>(GpuElementWise.Copy)(config, V<long>(x), V<long>(r)); break;
            case (DType.Float32, DType.Float64): kernels.Load<ArrayView<float>, ArrayView<double>>(GpuElementWise.Cast<float, Float32Kind, double, Float64Kind>)(config, V<float>(x), V<double>(r)); break;
            case (DType.Float64, DType.Float32): kernels.Load<ArrayView<double>, ArrayView<float>>(GpuElementWise.Cast<double, Float64Kind, float, Float32Kind>)(config, V<double>(x), V<float>(r)); break;
            case (DType.Int64, DType.Float32): kernels.Load<ArrayView<long>, ArrayView<float>>(GpuElementWise.Cast<long, Int64Kind, float, Float32Kind>)(config, V<long>(x), V<float>(r)); break;
            case (DType.Int64, DType.Float64): kernels.Load<ArrayView<long>, ArrayView<double>>(GpuElementWise.Cast<long, Int64Kind, double, Float64Kind>)(config, V<long>(x), V<double>(r)); break;
            case (DType.Float32, DType.Int64): kernels.Load<ArrayView<float>, ArrayView<long>>(GpuElementWise.Cast<float, Float32Kind, long, Int64Kind>)(config, V<float>(x), V<long>(r)); break;
            default: kernels.Load<ArrayView<double>, ArrayView<long>>(GpuElementWise.Cast<double, Float64Kind, long, Int64Kind>)(config, V<double>(x), V<long>(r)); break;
        }
        return r;
    }

    /// <inheritdoc/>
    public override NdArray LinearCombination(NdArray[] xs, double[] coefficients)
    {
        using var turn = gate.EnterScope();
        var r = New(xs[0].Shape, xs[0].DType);
        if (r.Size == 0) return r;
        var config = kernels.Stride(r.Size);
        // Four terms a launch, each launch after the first adding to r.
        for (int first = 0; first < xs.Length; first += 4)
        {
            int terms = Math.Min(4, xs.Length - first);
            NdArray X(int j) => xs[first + Math.Min(j, terms - 1)];
            double C(int j) => j < terms ? coefficients[first + j] : 0;
            var c = new Coefficients4 { C0 = C(0), C1 = C(1), C2 = C(2), C3 = C(3) };
            int accumulate = first == 0 ? 0 : 1;
            if (r.DType == DType.Float32)
                kernels.Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, Coefficients4, int, int>(GpuElementWise.Combine<float, Float32Kind>)(
                    config, V<float>(X(0)), V<float>(X(1)), V<float>(X(2)), V<float>(X(3)), V<float>(r), c, terms, accumulate);
            else
                kernels.Load<ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<double>, Coefficients4, int, int>(GpuElementWise.Combine<double, Float64Kind>)(
                    config, V<double>(X(0)), V<double>(X(1)), V<double>(X(2)), V<double>(X(3)), V<double>(r), c, terms, accumulate);
        }
        return r;
    }

    // ---------------------------------------------------------------- reductions

    /// <inheritdoc/>
    public override NdArray Reduce(ReduceOp op, NdArray x, int[] axes)
    {
        using var turn = gate.EnterScope();
        return ReduceByRuns(x, axes, (current, shape, run) =>
        {
            var next = New(shape, x.DType);
            long outputs = (long)run.Outer * run.Inner;
            if (outputs > 0 && run.Length > 0) ReduceRun(op, current, next, (int)outputs, run.Length, run.Inner);
            return next;
        });
    }

    private void ReduceRun(ReduceOp op, NdArray x, NdArray r, int outputs, int length, int inner)
    {
        // Few long reductions: a group each; many: a thread each.
        bool perGroup = length >= 4 * kernels.GroupSize && outputs <= 64 * kernels.MaxGroups;
        var config = perGroup ? kernels.GroupPerItem(outputs) : kernels.Stride(outputs);
        if (x.DType == DType.Float32)
            kernels.Load<ArrayView<float>, ArrayView<float>, int, int, int>(perGroup ? GpuReduction.PerGroup<float, Float32Kind> : GpuReduction.PerThread<float, Float32Kind>)(config, V<float>(x), V<float>(r), length, inner, (int)op);
        else
            kernels.Load<ArrayView<double>, ArrayView<double>, int, int, int>(perGroup ? GpuReduction.PerGroup<double, Float64Kind> : GpuReduction.PerThread<double, Float64Kind>)(config, V<double>(x), V<double>(r), length, inner, (int)op);
    }

    /// <inheritdoc/>
    public override double Dot(NdArray x, NdArray y) => Dots([x], y)[0];

    /// <inheritdoc/>
    public override double[] Dots(NdArray[] xs, NdArray y)
    {
        using var turn = gate.EnterScope();
        if (y.Size == 0) return new double[xs.Length];
        // Each product's per-group partial sums in a row of one array, then one read for all of them.
        int groups = (int)Math.Clamp((y.Size + kernels.GroupSize - 1) / kernels.GroupSize, 1, kernels.MaxGroups);
        var partials = New(new Shape(xs.Length, groups), DType.Float64);
        var config = new KernelConfig(groups, kernels.GroupSize, SharedMemoryConfig.RequestDynamic<double>(kernels.GroupSize));
        for (int i = 0; i < xs.Length; i++)
        {
            var row = V<double>(partials).SubView((long)i * groups, groups);
            if (y.DType == DType.Float32)
                kernels.Load<ArrayView<float>, ArrayView<float>, ArrayView<double>>(GpuReduction.DotPartials<float, Float32Kind>)(config, V<float>(xs[i]), V<float>(y), row);
            else
                kernels.Load<ArrayView<double>, ArrayView<double>, ArrayView<double>>(GpuReduction.DotPartials<double, Float64Kind>)(config, V<double>(xs[i]), V<double>(y), row);
        }
        var all = (double[])ToHost(partials);
        var sums = new double[xs.Length];
        for (int i = 0; i < xs.Length; i++)
            for (int g = 0; g < groups; g++) sums[i] += all[(long)i * groups + g];
        return sums;
    }

    // ---------------------------------------------------------------- products

    /// <inheritdoc/>
    public override NdArray MatMul(NdArray a, NdArray b, bool transA, bool transB, Shape shape) =>
        MatrixProduct(a, b, null, null, transA, transB, shape);

    /// <inheritdoc/>
    public override NdArray MatMulSum(NdArray a, NdArray b, NdArray a2, NdArray b2, bool transA, bool transB, Shape shape) =>
        MatrixProduct(a, b, a2, b2, transA, transB, shape);

    /// <summary>op(a)·op(b) (+ op(a2)·op(b2), in the same launch and accumulator), batched over the leading axes.</summary>
    private NdArray MatrixProduct(NdArray a, NdArray b, NdArray? a2, NdArray? b2, bool transA, bool transB, Shape shape)
    {
        using var turn = gate.EnterScope();
        int m = shape[^2], n = shape[^1], k = transA ? a.Shape[^2] : a.Shape[^1];
        if (shape.Size == 0 || k == 0) return Full(shape, a.DType, 0);
        var r = New(shape, a.DType);
        var p = new GemmArguments
        {
            M = m, N = n, K = k, TransA = transA ? 1 : 0, TransB = transB ? 1 : 0,
            Lda = a.Shape[^1], Ldb = b.Shape[^1], Ldc = n,
            StrideA = a.Shape[^2] * a.Shape[^1], StrideB = b.Shape[^2] * b.Shape[^1], StrideC = m * n,
            Pairs = a2 is null ? 1 : 2,
        };
        Multiply(a, b, r, p, (int)(shape.Size / ((long)m * n)), a2, b2);
        return r;
    }

    /// <summary>The product with the tiling and split-K that <see cref="GpuGemm.Plan{TLarge, TSmall, TThin16, TThin32}"/>
    /// chooses: on a GPU from its 128×128, 64×64, 16×256 and 32×128 blocks; on ILGPU's CPU accelerator, whose groups
    /// hold 16 threads, from 32×32 and 16×16 blocks (which serve as its 32- and 16-row tilings).</summary>
    internal void Multiply(NdArray a, NdArray b, NdArray c, GemmArguments p, int batch, NdArray? a2 = null, NdArray? b2 = null)
    {
        if (kernels.WideGroups) Multiply<GpuLargeTile, GpuSmallTile, GpuThin16Tile, GpuThin32Tile>(a, b, c, p, batch, a2, b2);
        else Multiply<CpuLargeTile, CpuSmallTile, CpuSmallTile, CpuLargeTile>(a, b, c, p, batch, a2, b2);
    }

    private void Multiply<TLarge, TSmall, TThin16, TThin32>(NdArray a, NdArray b, NdArray c, GemmArguments p, int batch, NdArray? a2, NdArray? b2)
        where TLarge : struct, IGemmTile where TSmall : struct, IGemmTile where TThin16 : struct, IGemmTile where TThin32 : struct, IGemmTile
    {
        var (tiling, product) = GpuGemm.Plan<TLarge, TSmall, TThin16, TThin32>(p, batch, Math.Max(1, Accelerator.NumMultiprocessors));
        switch (tiling)
        {
            case GemmTiling.Large: Multiply<TLarge>(a, b, c, product, batch, a2, b2); break;
            case GemmTiling.Small: Multiply<TSmall>(a, b, c, product, batch, a2, b2); break;
            case GemmTiling.Thin16: Multiply<TThin16>(a, b, c, product, batch, a2, b2); break;
            default: Multiply<TThin32>(a, b, c, product, batch, a2, b2); break;
        }
    }

    /// <summary>
    /// One product with the tiling <typeparamref name="C"/>: a launch into C, or, with K split, a launch into a
    /// workspace of partial products and their sum into C. The workspace is allocated before any view is taken
    /// (the rule every op keeps, <see cref="AcceleratorDevice"/>).
    /// </summary>
    private void Multiply<C>(NdArray a, NdArray b, NdArray c, GemmArguments p, int batch, NdArray? a2, NdArray? b2) where C : struct, IGemmTile
    {
        Interlocked.Add(ref usefulMultiplyAdds, GpuGemm.UsefulMultiplyAdds(p, batch));
        Interlocked.Add(ref issuedMultiplyAdds, GpuGemm.IssuedMultiplyAdds<C>(p, batch));
        var partials = p.KRanges > 1 ? New(new Shape(batch * p.KRanges, p.M, p.N), c.DType) : null;
        var into = partials ?? c;
        var args = partials is null ? p : p.Partials;
        var (grid, group) = args.Launch<C>(batch);
        var config = new KernelConfig(grid, group);
        if (c.DType == DType.Float32)
            kernels.Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmArguments>(GpuGemm.Multiply<float, C>)(
                config, V<float>(a), V<float>(b), V<float>(a2 ?? a), V<float>(b2 ?? b), V<float>(into), args);
        else
            kernels.Load<ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<double>, GemmArguments>(GpuGemm.Multiply<double, C>)(
                config, V<double>(a), V<double>(b), V<double>(a2 ?? a), V<double>(b2 ?? b), V<double>(into), args);
        if (partials is null) return;
        var sum = kernels.Stride((long)batch * p.M * p.N);
        if (c.DType == DType.Float32)
            kernels.Load<ArrayView<float>, ArrayView<float>, GemmArguments, int>(GpuGemm.SumSplits<float, Float32Kind>)(sum, V<float>(partials), V<float>(c), p, batch);
        else
            kernels.Load<ArrayView<double>, ArrayView<double>, GemmArguments, int>(GpuGemm.SumSplits<double, Float64Kind>)(sum, V<double>(partials), V<double>(c), p, batch);
    }

    // ---------------------------------------------------------------- layout

    /// <inheritdoc/>
    public override NdArray Permute(NdArray x, int[] axes)
    {
        using var turn = gate.EnterScope();
        var dims = x.Shape.ToArray();
        var source = Kernels.Cpu.Layout.RowMajorStrides(dims);
        return Strided(x, new Shape(axes.Select(a => dims[a]).ToArray()), axes.Select(a => (int)source[a]).ToArray());
    }

    private void CopyBlocks(NdArray src, NdArray dst, BlockCopy b)
    {
        if ((long)b.Outer * b.Count == 0) return;
        var config = kernels.Stride((long)b.Outer * b.Count);
        switch (src.DType)
        {
            case DType.Float32: kernels.Load<ArrayView<float>, ArrayView<float>, BlockCopy>(GpuLayout.CopyBlocks)(config, V<float>(src), V<float>(dst), b); break;
            case DType.Float64: kernels.Load<ArrayView<double>, ArrayView<double>, BlockCopy>(GpuLayout.CopyBlocks)(config, V<double>(src), V<double>(dst), b); break;
            default: kernels.Load<ArrayView<long>, ArrayView<long>, BlockCopy>(GpuLayout.CopyBlocks)(config, V<long>(src), V<long>(dst), b); break;
        }
    }

    /// <inheritdoc/>
    public override NdArray Slice(NdArray x, int axis, int start, int length)
    {
        using var turn = gate.EnterScope();
        var dims = x.Shape.ToArray();
        dims[axis] = length;
        var r = New(new Shape(dims), x.DType);
        var (outer, inner) = Around(x.Shape, axis);
        CopyBlocks(x, r, new BlockCopy { Outer = outer, Count = length * inner, SrcRow = x.Shape[axis] * inner, SrcStart = start * inner, DstRow = length * inner, DstStart = 0 });
        return r;
    }

    /// <inheritdoc/>
    public override NdArray Concat(NdArray[] xs, int axis)
    {
        using var turn = gate.EnterScope();
        var dims = xs[0].Shape.ToArray();
        dims[axis] = xs.Sum(x => x.Shape[axis]);
        var r = New(new Shape(dims), xs[0].DType);
        var (outer, inner) = Around(r.Shape, axis);
        int dstRow = dims[axis] * inner, at = 0;
        foreach (var x in xs)
        {
            int count = x.Shape[axis] * inner;
            CopyBlocks(x, r, new BlockCopy { Outer = outer, Count = count, SrcRow = count, SrcStart = 0, DstRow = dstRow, DstStart = at });
            at += count;
        }
        return r;
    }

    /// <inheritdoc/>
    public override NdArray Gather(NdArray table, NdArray indices)
    {
        using var turn = gate.EnterScope();
        int rows = table.Shape[0], width = table.Shape[1];
        var r = New(new Shape([.. indices.Shape, width]), table.DType);
        if (r.Size == 0) return r;
        var config = kernels.Stride(r.Size);
        switch (table.DType)
        {
            case DType.Float32: kernels.Load<ArrayView<float>, ArrayView<long>, ArrayView<float>, int, int>(GpuLayout.Gather)(config, V<float>(table), V<long>(indices), V<float>(r), rows, width); break;
            case DType.Float64: kernels.Load<ArrayView<double>, ArrayView<long>, ArrayView<double>, int, int>(GpuLayout.Gather)(config, V<double>(table), V<long>(indices), V<double>(r), rows, width); break;
            default: kernels.Load<ArrayView<long>, ArrayView<long>, ArrayView<long>, int, int>(GpuLayout.Gather)(config, V<long>(table), V<long>(indices), V<long>(r), rows, width); break;
        }
        return r;
    }

    /// <inheritdoc/>
    public override NdArray ScatterAdd(NdArray indices, NdArray updates, int rows)
    {
        using var turn = gate.EnterScope();
        int width = updates.Shape[^1];
        var r = New(new Shape(rows, width), updates.DType);
        if (r.Size == 0) return r;
        if (indices.Size == 0) return Full(r.Shape, updates.DType, 0);
        var config = kernels.Stride(r.Size);
        if (updates.DType == DType.Float32)
            kernels.Load<ArrayView<long>, ArrayView<float>, ArrayView<float>, int>(GpuLayout.ScatterAdd)(config, V<long>(indices), V<float>(updates), V<float>(r), width);
        else
            kernels.Load<ArrayView<long>, ArrayView<double>, ArrayView<double>, int>(GpuLayout.ScatterAdd)(config, V<long>(indices), V<double>(updates), V<double>(r), width);
        return r;
    }

    // ---------------------------------------------------------------- random numbers

    /// <inheritdoc/>
    public override NdArray Random(RandomKind kind, ulong key, ulong offset, Shape shape, DType dtype, long high)
    {
        using var turn = gate.EnterScope();
        var r = New(shape, dtype);
        if (shape.Size == 0) return r;
        var config = kernels.Stride((shape.Size + 3) / 4);
        var draw = new RandomDraw
        {
            Key = key, Offset = offset, High = high, Single = dtype == DType.Float32 ? 1 : 0,
            Kind = kind switch { RandomKind.Uniform => 0, RandomKind.Normal => 1, RandomKind.Integers => 2, _ => 3 },
        };
        if (kind == RandomKind.Integers) kernels.Load<ArrayView<long>, RandomDraw>(GpuPhilox.Integers)(config, V<long>(r), draw);
        else if (dtype == DType.Float32) kernels.Load<ArrayView<float>, RandomDraw>(GpuPhilox.Fill<float, Float32Kind>)(config, V<float>(r), draw);
        else kernels.Load<ArrayView<double>, RandomDraw>(GpuPhilox.Fill<double, Float64Kind>)(config, V<double>(r), draw);
        return r;
    }
}
