using System.Numerics;
using Curvature.Kernels;
using Curvature.Kernels.Cpu;

namespace Curvature.Engine;

/// <summary>
/// The CPU: managed arrays and the SIMD kernels of the Kernels layer, parallel over
/// <see cref="Parallelism.MaxThreads"/> cores with results independent of the thread count.
/// </summary>
public sealed class CpuDevice : Device
{
    /// <summary>The single CPU device.</summary>
    public static readonly CpuDevice Instance = new();

    private CpuDevice() { }

    /// <inheritdoc/>
    public override string Name => "cpu";

    /// <inheritdoc/>
    public override Storage Allocate(DType dtype, long length) => new CpuStorage(dtype, length);

    private NdArray New(Shape shape, DType dtype) => new(Allocate(dtype, shape.Size), 0, shape);

    /// <inheritdoc/>
    public override NdArray FromHost(Array data, Shape shape) => new(new CpuStorage(data), 0, shape);

    /// <inheritdoc/>
    public override Array ToHost(NdArray x)
    {
        using var alive = new KeepAlive(x);
        return x.DType switch
        {
            DType.Float32 => x.Span<float>().ToArray(),
            DType.Float64 => x.Span<double>().ToArray(),
            _ => x.Span<long>().ToArray(),
        };
    }

    /// <inheritdoc/>
    public override NdArray Full(Shape shape, DType dtype, double value)
    {
        var r = New(shape, dtype);
        switch (dtype)
        {
            case DType.Float32: r.Span<float>().Fill((float)value); break;
            case DType.Float64: r.Span<double>().Fill(value); break;
            default: r.Span<long>().Fill((long)value); break;
        }
        return r;
    }

    /// <inheritdoc/>
    public override NdArray Unary(UnaryOp op, NdArray x)
    {
        using var alive = new KeepAlive(x);
        var r = New(x.Shape, x.DType);
        if (x.DType == DType.Float32) ElementWise.Unary<float>(op, x.Span<float>(), r.Span<float>());
        else ElementWise.Unary<double>(op, x.Span<double>(), r.Span<double>());
        return r;
    }

    /// <inheritdoc/>
    public override NdArray Binary(BinaryOp op, NdArray x, NdArray y, Shape shape)
    {
        using var alive = new KeepAlive(x, y);
        var r = New(shape, x.DType);
        var xs = x.Shape.BroadcastStrides(shape);
        var ys = y.Shape.BroadcastStrides(shape);
        var dims = shape.ToArray();
        if (x.DType == DType.Float32) ElementWise.Binary<float>(op, x.Span<float>(), xs, y.Span<float>(), ys, r.Span<float>(), dims);
        else ElementWise.Binary<double>(op, x.Span<double>(), xs, y.Span<double>(), ys, r.Span<double>(), dims);
        return r;
    }

    /// <inheritdoc/>
    public override NdArray Where(NdArray cond, NdArray x, NdArray y, Shape shape)
    {
        using var alive = new KeepAlive(cond, x, y);
        // Broadcast operands are read through zero strides, never materialized (attention's [T, T] mask and
        // scalar fill against [B, H, T, T] scores).
        var r = New(shape, x.DType);
        int[] cs = cond.Shape.BroadcastStrides(shape), xs = x.Shape.BroadcastStrides(shape), ys = y.Shape.BroadcastStrides(shape), dims = shape.ToArray();
        if (x.DType == DType.Float32) ElementWise.Where<float>(cond.Span<float>(), cs, x.Span<float>(), xs, y.Span<float>(), ys, r.Span<float>(), dims);
        else ElementWise.Where<double>(cond.Span<double>(), cs, x.Span<double>(), xs, y.Span<double>(), ys, r.Span<double>(), dims);
        return r;
    }

    /// <inheritdoc/>
    public override NdArray Reduce(ReduceOp op, NdArray x, int[] axes) => ReduceByRuns(x, axes, (current, shape, run) =>
    {
        // An intermediate run's result is otherwise unreachable while the kernel reads it: its buffer could go back
        // to the pool and to another thread's array mid-read.
        using var alive = new KeepAlive(current);
        var next = New(shape, x.DType);
        if (x.DType == DType.Float32) Reduction.Reduce<float>(op, current.Span<float>(), run.Outer, run.Length, run.Inner, next.Span<float>());
        else Reduction.Reduce<double>(op, current.Span<double>(), run.Outer, run.Length, run.Inner, next.Span<double>());
        return next;
    });

    /// <inheritdoc/>
    public override NdArray BroadcastTo(NdArray x, Shape shape)
    {
        using var alive = new KeepAlive(x);
        var zero = Full(Shape.Scalar, x.DType, 0);
        return Binary(BinaryOp.Add, x, zero, shape);
    }

    /// <inheritdoc/>
    public override NdArray MatMul(NdArray a, NdArray b, bool transA, bool transB, Shape shape)
    {
        using var alive = new KeepAlive(a, b);
        var r = New(shape, a.DType);
        MultiplyInto(a, b, transA, transB, r, accumulate: false);
        return r;
    }

    /// <inheritdoc/>
    public override NdArray MatMulSum(NdArray a, NdArray b, NdArray a2, NdArray b2, bool transA, bool transB, Shape shape)
    {
        using var alive = new KeepAlive(a, b);
        using var alsoAlive = new KeepAlive(a2, b2);
        var r = New(shape, a.DType);
        MultiplyInto(a, b, transA, transB, r, accumulate: false);
        MultiplyInto(a2, b2, transA, transB, r, accumulate: true); // the second product lands on the first in the GEMM's store
        return r;
    }

    /// <summary>r (+)= op(a)·op(b) over the last two axes, batched over the leading ones.</summary>
    private static void MultiplyInto(NdArray a, NdArray b, bool transA, bool transB, NdArray r, bool accumulate)
    {
        var shape = r.Shape;
        if (shape.Size == 0) return;
        int m = shape[^2], n = shape[^1], k = transA ? a.Shape[^2] : a.Shape[^1];
        int batch = (int)(shape.Size / Math.Max(1L, (long)m * n));
        int lda = a.Shape[^1], ldb = b.Shape[^1];
        long sa = (long)a.Shape[^2] * a.Shape[^1], sb = (long)b.Shape[^2] * b.Shape[^1], sc = (long)m * n;
        if (a.DType == DType.Float32)
            Gemm.MultiplyBatched<float>(batch, transA, transB, m, n, k, a.Span<float>(), lda, sa, b.Span<float>(), ldb, sb, r.Span<float>(), n, sc, accumulate);
        else
            Gemm.MultiplyBatched<double>(batch, transA, transB, m, n, k, a.Span<double>(), lda, sa, b.Span<double>(), ldb, sb, r.Span<double>(), n, sc, accumulate);
    }

    /// <inheritdoc/>
    public override NdArray Permute(NdArray x, int[] axes)
    {
        using var alive = new KeepAlive(x);
        var dims = x.Shape.ToArray();
        var r = New(new Shape(axes.Select(a => dims[a]).ToArray()), x.DType);
        switch (x.DType)
        {
            case DType.Float32: Layout.Permute<float>(x.Span<float>(), dims, axes, r.Span<float>()); break;
            case DType.Float64: Layout.Permute<double>(x.Span<double>(), dims, axes, r.Span<double>()); break;
            default: Layout.Permute<long>(x.Span<long>(), dims, axes, r.Span<long>()); break;
        }
        return r;
    }

    /// <inheritdoc/>
    public override NdArray Slice(NdArray x, int axis, int start, int length)
    {
        using var alive = new KeepAlive(x);
        var dims = x.Shape.ToArray();
        dims[axis] = length;
        var r = New(new Shape(dims), x.DType);
        var (outer, inner) = Around(x.Shape, axis);
        int srcRow = x.Shape[axis] * inner, dstRow = length * inner;
        switch (x.DType)
        {
            case DType.Float32: Layout.CopyBlocks<float>(x.Span<float>(), srcRow, start * inner, r.Span<float>(), dstRow, 0, outer, dstRow); break;
            case DType.Float64: Layout.CopyBlocks<double>(x.Span<double>(), srcRow, start * inner, r.Span<double>(), dstRow, 0, outer, dstRow); break;
            default: Layout.CopyBlocks<long>(x.Span<long>(), srcRow, start * inner, r.Span<long>(), dstRow, 0, outer, dstRow); break;
        }
        return r;
    }

    /// <inheritdoc/>
    public override NdArray Concat(NdArray[] xs, int axis)
    {
        using var alive = new KeepAlive(xs);
        var dims = xs[0].Shape.ToArray();
        dims[axis] = xs.Sum(x => x.Shape[axis]);
        var r = New(new Shape(dims), xs[0].DType);
        var (outer, inner) = Around(r.Shape, axis);
        int dstRow = dims[axis] * inner, at = 0;
        foreach (var x in xs)
        {
            int count = x.Shape[axis] * inner;
            switch (x.DType)
            {
                case DType.Float32: Layout.CopyBlocks<float>(x.Span<float>(), count, 0, r.Span<float>(), dstRow, at, outer, count); break;
                case DType.Float64: Layout.CopyBlocks<double>(x.Span<double>(), count, 0, r.Span<double>(), dstRow, at, outer, count); break;
                default: Layout.CopyBlocks<long>(x.Span<long>(), count, 0, r.Span<long>(), dstRow, at, outer, count); break;
            }
            at += count;
        }
        return r;
    }

    /// <inheritdoc/>
    public override NdArray Gather(NdArray table, NdArray indices)
    {
        using var alive = new KeepAlive(table, indices);
        int rows = table.Shape[0], width = table.Shape[1];
        var r = New(new Shape([.. indices.Shape, width]), table.DType);
        switch (table.DType)
        {
            case DType.Float32: Layout.Gather<float>(table.Span<float>(), rows, width, indices.Span<long>(), r.Span<float>()); break;
            case DType.Float64: Layout.Gather<double>(table.Span<double>(), rows, width, indices.Span<long>(), r.Span<double>()); break;
            default: Layout.Gather<long>(table.Span<long>(), rows, width, indices.Span<long>(), r.Span<long>()); break;
        }
        return r;
    }

    /// <inheritdoc/>
    public override NdArray ScatterAdd(NdArray indices, NdArray updates, int rows)
    {
        using var alive = new KeepAlive(indices, updates);
        int width = updates.Shape[^1];
        var r = Full(new Shape(rows, width), updates.DType, 0);
        if (updates.DType == DType.Float32) Layout.ScatterAdd<float>(updates.Span<float>(), width, indices.Span<long>(), r.Span<float>(), rows);
        else Layout.ScatterAdd<double>(updates.Span<double>(), width, indices.Span<long>(), r.Span<double>(), rows);
        return r;
    }

    /// <inheritdoc/>
    public override NdArray Cast(NdArray x, DType dtype)
    {
        using var alive = new KeepAlive(x);
        var r = New(x.Shape, dtype);
        switch (x.DType, dtype)
        {
            case (DType.Float32, DType.Float32): x.Span<float>().CopyTo(r.Span<float>()); break;
            case (DType.Float64, DType.Float64): x.Span<double>().CopyTo(r.Span<double>()); break;
            case (DType.Int64, DType.Int64): x.Span<long>().CopyTo(r.Span<long>()); break;
            default: Convert(x, r); break;
        }
        return r;
    }

    private static void Convert(NdArray x, NdArray r)
    {
        long n = x.Size;
        for (int i = 0; i < n; i++)
        {
            double v = x.DType switch { DType.Float32 => x.Span<float>()[i], DType.Float64 => x.Span<double>()[i], _ => x.Span<long>()[i] };
            switch (r.DType)
            {
                case DType.Float32: r.Span<float>()[i] = (float)v; break;
                case DType.Float64: r.Span<double>()[i] = v; break;
                default: r.Span<long>()[i] = (long)v; break;
            }
        }
    }

    /// <inheritdoc/>
    public override NdArray Random(RandomKind kind, ulong key, ulong offset, Shape shape, DType dtype, long high)
    {
        var r = New(shape, dtype);
        switch (kind)
        {
            case RandomKind.Integers:
                Philox.Integers(key, offset, high, r.Span<long>());
                break;
            case RandomKind.Rademacher:
                var ints = new long[shape.Size];
                Philox.Integers(key, offset, 2, ints);
                for (int i = 0; i < ints.Length; i++)
                {
                    if (dtype == DType.Float32) r.Span<float>()[i] = ints[i] == 0 ? -1f : 1f;
                    else r.Span<double>()[i] = ints[i] == 0 ? -1.0 : 1.0;
                }
                break;
            default:
                if (dtype == DType.Float32) Fill<float>(kind, key, offset, r.Span<float>());
                else Fill<double>(kind, key, offset, r.Span<double>());
                break;
        }
        return r;
    }

    private static void Fill<T>(RandomKind kind, ulong key, ulong offset, Span<T> dst) where T : IFloatingPointIeee754<T>
    {
        if (kind == RandomKind.Uniform) Philox.Uniform(key, offset, dst);
        else Philox.Normal(key, offset, dst);
    }

    /// <inheritdoc/>
    public override unsafe NdArray LinearCombination(NdArray[] xs, double[] coefficients)
    {
        using var alive = new KeepAlive(xs);
        var r = New(xs[0].Shape, xs[0].DType);
        if (r.DType == DType.Float32) Combine<float>(xs, coefficients, r);
        else Combine<double>(xs, coefficients, r);
        return r;
    }

    private static unsafe void Combine<T>(NdArray[] xs, double[] coefficients, NdArray r) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var handles = new System.Runtime.InteropServices.GCHandle[xs.Length];
        var pointers = new T*[xs.Length];
        try
        {
            for (int i = 0; i < xs.Length; i++)
            {
                handles[i] = System.Runtime.InteropServices.GCHandle.Alloc(((CpuStorage)xs[i].Storage).Data, System.Runtime.InteropServices.GCHandleType.Pinned);
                pointers[i] = (T*)handles[i].AddrOfPinnedObject() + xs[i].Offset;
            }
            fixed (T* d = r.Span<T>())
                ElementWise.LinearCombination(pointers, coefficients.Select(T.CreateChecked).ToArray(), d, r.Size);
        }
        finally
        {
            foreach (var h in handles) if (h.IsAllocated) h.Free();
        }
    }

    /// <inheritdoc/>
    public override double Dot(NdArray x, NdArray y)
    {
        using var alive = new KeepAlive(x, y);
        return x.DType == DType.Float32 ? Reduction.Dot<float>(x.Span<float>(), y.Span<float>()) : Reduction.Dot<double>(x.Span<double>(), y.Span<double>());
    }
}
