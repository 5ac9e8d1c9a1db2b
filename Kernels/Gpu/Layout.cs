using System.Numerics;
using ILGPU;

namespace Curvature.Kernels.Gpu;

/// <summary>Data movement: strided copies (permute, broadcast), block copies (slice, concat), gather, scatter-add, im2col and col2im.</summary>
public static class Layout
{
    /// <summary>r[i] = x[offset of i under the layout's first strides] (permutation or materialized broadcast).</summary>
    public static void Strided<T>(ArrayView<T> x, ArrayView<T> r, StridedLayout layout) where T : unmanaged
    {
        for (int i = KernelCache.First; i < r.IntLength; i += KernelCache.Step)
        {
            layout.Offsets(i, out int a, out _, out _);
            r[i] = x[a];
        }
    }

    /// <summary>
    /// Copies <c>outer</c> blocks of <c>count</c> elements: block o from src[o·srcRow + srcStart …] to
    /// dst[o·dstRow + dstStart …] (slice along an axis, or one part of a concatenation).
    /// </summary>
    public static void CopyBlocks<T>(ArrayView<T> src, ArrayView<T> dst, BlockCopy b) where T : unmanaged
    {
        int total = b.Outer * b.Count;
        for (int i = KernelCache.First; i < total; i += KernelCache.Step)
        {
            int o = i / b.Count, j = i - o * b.Count;
            dst[o * b.DstRow + b.DstStart + j] = src[o * b.SrcRow + b.SrcStart + j];
        }
    }

    /// <summary>r[i, :] = table[indices[i], :]; an index outside the table gives a row of zeros (the host validates indices it uploads).</summary>
    public static void Gather<T>(ArrayView<T> table, ArrayView<long> indices, ArrayView<T> r, int rows, int width) where T : unmanaged
    {
        for (int i = KernelCache.First; i < r.IntLength; i += KernelCache.Step)
        {
            int n = i / width, column = i - n * width;
            long row = indices[n];
            r[i] = row >= 0 && row < rows ? table[(int)row * width + column] : default;
        }
    }

    /// <summary>
    /// r[row, :] = Σ over i with indices[i] = row of updates[i, :], one thread per output element summing in
    /// index order: deterministic, no atomics (costs rows·width·count reads; fine for vocabularies of hundreds).
    /// </summary>
    public static void ScatterAdd<T>(ArrayView<long> indices, ArrayView<T> updates, ArrayView<T> r, int width)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int count = indices.IntLength;
        for (int e = KernelCache.First; e < r.IntLength; e += KernelCache.Step)
        {
            int row = e / width, column = e - row * width;
            T s = T.Zero;
            for (int i = 0; i < count; i++) if (indices[i] == row) s += updates[i * width + column];
            r[e] = s;
        }
    }

    /// <summary>cols[(c·KH + ki)·KW + kj, (n·OH + oy)·OW + ox] = x[n, c, oy·s − p + ki, ox·s − p + kj] (zero outside the image).</summary>
    public static void Im2Col<T>(ArrayView<T> x, ArrayView<T> cols, ConvolutionShape g) where T : unmanaged
    {
        int columns = g.N * g.OH * g.OW;
        for (int e = KernelCache.First; e < cols.IntLength; e += KernelCache.Step)
        {
            int row = e / columns, col = e - row * columns;
            int kj = row % g.KW, ki = row / g.KW % g.KH, c = row / (g.KW * g.KH);
            int ox = col % g.OW, oy = col / g.OW % g.OH, n = col / (g.OW * g.OH);
            int y = oy * g.Stride - g.Padding + ki, xx = ox * g.Stride - g.Padding + kj;
            cols[e] = y >= 0 && y < g.H && xx >= 0 && xx < g.W ? x[((n * g.C + c) * g.H + y) * g.W + xx] : default;
        }
    }

    /// <summary>col2im, the adjoint of <see cref="Im2Col{T}"/>, gathered: each image element sums the columns that read it, in a fixed order.</summary>
    public static void Col2Im<T>(ArrayView<T> cols, ArrayView<T> x, ConvolutionShape g) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int columns = g.N * g.OH * g.OW;
        for (int e = KernelCache.First; e < x.IntLength; e += KernelCache.Step)
        {
            int xx = e % g.W, y = e / g.W % g.H, c = e / (g.W * g.H) % g.C, n = e / (g.W * g.H * g.C);
            T s = T.Zero;
            for (int ki = 0; ki < g.KH; ki++)
            {
                int ty = y + g.Padding - ki;
                if (ty < 0 || ty % g.Stride != 0) continue;
                int oy = ty / g.Stride;
                if (oy >= g.OH) continue;
                for (int kj = 0; kj < g.KW; kj++)
                {
                    int tx = xx + g.Padding - kj;
                    if (tx < 0 || tx % g.Stride != 0) continue;
                    int ox = tx / g.Stride;
                    if (ox >= g.OW) continue;
                    s += cols[((c * g.KH + ki) * g.KW + kj) * columns + (n * g.OH + oy) * g.OW + ox];
                }
            }
            x[e] = s;
        }
    }
}

/// <summary>Arguments of <see cref="Layout.CopyBlocks{T}"/>.</summary>
public struct BlockCopy
{
    /// <summary>Number of blocks.</summary>
    public int Outer;
    /// <summary>Elements per block.</summary>
    public int Count;
    /// <summary>Source elements between blocks.</summary>
    public int SrcRow;
    /// <summary>First source element of block 0.</summary>
    public int SrcStart;
    /// <summary>Destination elements between blocks.</summary>
    public int DstRow;
    /// <summary>First destination element of block 0.</summary>
    public int DstStart;
}

/// <summary>A convolution's geometry for kernels (the fields of <see cref="ConvolutionGeometry"/>, with the output size).</summary>
public struct ConvolutionShape
{
    /// <summary>Batch, channels, height, width, kernel height and width, stride, padding, output height and width.</summary>
    public int N, C, H, W, KH, KW, Stride, Padding, OH, OW;

    /// <summary>The kernel shape of a geometry.</summary>
    public static ConvolutionShape Of(ConvolutionGeometry g) => new()
    {
        N = g.N, C = g.C, H = g.H, W = g.W, KH = g.KH, KW = g.KW, Stride = g.Stride, Padding = g.Padding, OH = g.OH, OW = g.OW,
    };
}
