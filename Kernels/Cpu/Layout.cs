using System.Numerics;
using System.Numerics.Tensors;

namespace Curvature.Kernels.Cpu;

/// <summary>Data movement: permutation of axes, slices and concatenation along an axis, gather and scatter-add of rows.</summary>
public static class Layout
{
    /// <summary>dst = x with its axes permuted: dst axis i is x axis <paramref name="axes"/>[i].</summary>
    public static void Permute<T>(ReadOnlySpan<T> x, int[] shape, int[] axes, Span<T> dst) where T : unmanaged
    {
        int rank = shape.Length;
        var strides = RowMajorStrides(shape);
        var outShape = new int[rank];
        var srcStrides = new long[rank];
        for (int i = 0; i < rank; i++) { outShape[i] = shape[axes[i]]; srcStrides[i] = strides[axes[i]]; }
        if (rank == 0) { dst[0] = x[0]; return; }
        int inner = outShape[rank - 1];
        long innerStride = srcStrides[rank - 1];
        long rows = dst.Length / Math.Max(1, inner);
        unsafe
        {
            fixed (T* px = x) fixed (T* pd = dst)
            {
                T* ppx = px, ppd = pd;
                Parallelism.ForChunks(rows, Math.Max(1, 8192 / Math.Max(1, inner)), (r0, n) =>
                {
                    for (long r = r0; r < r0 + n; r++)
                    {
                        long rem = r, off = 0;
                        for (int a = rank - 2; a >= 0; a--) { off += rem % outShape[a] * srcStrides[a]; rem /= outShape[a]; }
                        T* d = ppd + r * inner;
                        if (innerStride == 1) new ReadOnlySpan<T>(ppx + off, inner).CopyTo(new Span<T>(d, inner));
                        else for (int j = 0; j < inner; j++) d[j] = ppx[off + j * innerStride];
                    }
                });
            }
        }
    }

    /// <summary>Row-major element strides of a shape.</summary>
    public static long[] RowMajorStrides(int[] shape)
    {
        var s = new long[shape.Length];
        long acc = 1;
        for (int i = shape.Length - 1; i >= 0; i--) { s[i] = acc; acc *= shape[i]; }
        return s;
    }

    /// <summary>
    /// Copies a block between arrays viewed as [outer, axis·inner]: for each outer index, <paramref name="count"/>
    /// elements from offset <paramref name="srcStart"/> of a source row of length <paramref name="srcRow"/> to
    /// offset <paramref name="dstStart"/> of a destination row of length <paramref name="dstRow"/>. Slicing and
    /// concatenation along an axis are both this copy.
    /// </summary>
    public static void CopyBlocks<T>(ReadOnlySpan<T> src, int srcRow, int srcStart, Span<T> dst, int dstRow, int dstStart, int outer, int count)
    {
        for (int o = 0; o < outer; o++)
            src.Slice(o * srcRow + srcStart, count).CopyTo(dst.Slice(o * dstRow + dstStart, count));
    }

    /// <summary>dst[i, :] = table[indices[i], :] for rows of length <paramref name="width"/>.</summary>
    public static void Gather<T>(ReadOnlySpan<T> table, int rows, int width, ReadOnlySpan<long> indices, Span<T> dst)
    {
        for (int i = 0; i < indices.Length; i++)
        {
            long r = indices[i];
            if ((ulong)r >= (ulong)rows) throw new IndexOutOfRangeException($"gather: index {r} at position {i} is outside [0, {rows}).");
            table.Slice((int)(r * width), width).CopyTo(dst.Slice(i * width, width));
        }
    }

    /// <summary>dst[indices[i], :] += src[i, :], in index order (deterministic).</summary>
    public static void ScatterAdd<T>(ReadOnlySpan<T> src, int width, ReadOnlySpan<long> indices, Span<T> dst, int rows)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int i = 0; i < indices.Length; i++)
        {
            long r = indices[i];
            if ((ulong)r >= (ulong)rows) throw new IndexOutOfRangeException($"scatter-add: index {r} at position {i} is outside [0, {rows}).");
            var row = dst.Slice((int)(r * width), width);
            TensorPrimitives.Add(row, src.Slice(i * width, width), row);
        }
    }

    /// <summary>
    /// im2col: x [n, c, h, w] to columns [c·kh·kw, n·oh·ow]. Row (ch, ki, kj) holds, for every image and output
    /// position, the input value under kernel element (ki, kj) of channel ch (zero in the padding), which is the
    /// layout one matrix product with the kernels [o, c·kh·kw] needs. Rows are filled in parallel.
    /// </summary>
    public static unsafe void Im2Col<T>(ReadOnlySpan<T> x, int n, int c, int h, int w, int kh, int kw, int stride, int pad, Span<T> cols)
        where T : unmanaged
    {
        int oh = (h + 2 * pad - kh) / stride + 1, ow = (w + 2 * pad - kw) / stride + 1, l = oh * ow;
        fixed (T* px = x) fixed (T* pc = cols)
        {
            T* xs = px, cs = pc;
            Parallelism.For(c * kh * kw, row =>
            {
                int ch = row / (kh * kw), ki = row / kw % kh, kj = row % kw;
                T* dst = cs + (long)row * n * l;
                for (int b = 0; b < n; b++)
                {
                    T* plane = xs + ((long)b * c + ch) * h * w;
                    for (int i = 0; i < oh; i++, dst += ow)
                    {
                        int y = i * stride - pad + ki;
                        if (y < 0 || y >= h) { new Span<T>(dst, ow).Clear(); continue; }
                        T* src = plane + (long)y * w;
                        if (stride == 1)
                        {
                            // Output columns j read input columns j − pad + kj: one contiguous run, zeros at the ends.
                            int j0 = Math.Max(0, pad - kj), j1 = Math.Min(ow, w + pad - kj);
                            for (int j = 0; j < j0; j++) dst[j] = default;
                            if (j1 > j0) new ReadOnlySpan<T>(src + j0 - pad + kj, j1 - j0).CopyTo(new Span<T>(dst + j0, j1 - j0));
                            for (int j = Math.Max(j0, j1); j < ow; j++) dst[j] = default;
                        }
                        else
                            for (int j = 0; j < ow; j++)
                            {
                                int xx = j * stride - pad + kj;
                                dst[j] = xx >= 0 && xx < w ? src[xx] : default;
                            }
                    }
                }
            });
        }
    }

    /// <summary>
    /// col2im, the adjoint of <see cref="Im2Col"/>: columns [c·kh·kw, n·oh·ow] summed back into x [n, c, h, w].
    /// Channels run in parallel (their planes are disjoint); within a channel the sum order is fixed.
    /// </summary>
    public static unsafe void Col2Im<T>(ReadOnlySpan<T> cols, int n, int c, int h, int w, int kh, int kw, int stride, int pad, Span<T> x)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int oh = (h + 2 * pad - kh) / stride + 1, ow = (w + 2 * pad - kw) / stride + 1, l = oh * ow;
        x.Clear();
        fixed (T* pc = cols) fixed (T* px = x)
        {
            T* cs = pc, xs = px;
            Parallelism.For(c, ch =>
            {
                for (int ki = 0; ki < kh; ki++)
                    for (int kj = 0; kj < kw; kj++)
                    {
                        T* src = cs + (long)((ch * kh + ki) * kw + kj) * n * l;
                        for (int b = 0; b < n; b++)
                        {
                            T* plane = xs + ((long)b * c + ch) * h * w;
                            for (int i = 0; i < oh; i++, src += ow)
                            {
                                int y = i * stride - pad + ki;
                                if (y < 0 || y >= h) continue;
                                T* row = plane + (long)y * w;
                                for (int j = 0; j < ow; j++)
                                {
                                    int xx = j * stride - pad + kj;
                                    if (xx >= 0 && xx < w) row[xx] += src[j];
                                }
                            }
                        }
                    }
            });
        }
    }
}
