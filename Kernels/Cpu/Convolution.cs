using System.Buffers;
using System.Numerics;
using System.Numerics.Tensors;

namespace Curvature.Kernels.Cpu;

/// <summary>
/// 2-D convolution as one GEMM per image with the im2col columns packed straight from the image into the GEMM's
/// panels (implicit im2col, as in cuDNN's implicit-GEMM algorithm): nothing of size C·KH·KW × N·OH·OW is ever
/// written, and the output lands in [N, O, OH, OW] with no permutation. Forward: y_n = W·cols(x_n). Weight
/// gradient: W̄ = Σ_n ȳ_n·cols(x_n)ᵀ, summed over fixed chunks of images in a fixed order (bitwise the same on
/// any thread count). Input gradient: x̄_n = col2im(Wᵀ·ȳ_n), one image at a time in a per-thread buffer.
/// </summary>
public static unsafe class Convolution
{
    private const int ImagesPerChunk = 8;

    /// <summary>
    /// y [N, O, OH, OW] = conv(x [N, C, H, W], w [O, C, KH, KW]); with <paramref name="accumulate"/>, y += conv(x, w),
    /// added as the output is stored rather than by a separate pass (a JVP's two terms take <see cref="ForwardPair{T}"/>,
    /// one call over both).
    /// </summary>
    public static void Forward<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> w, Span<T> y, ConvolutionGeometry g, bool accumulate = false) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (DirectConvolution.Supports(g)) DirectConvolution.Forward(x, w, y, g, accumulate);
        else ForwardImplicitGemm(x, w, y, g, accumulate);
    }

    /// <summary>y = conv(x, w) + conv(x₂, w₂) (a JVP's two terms): one direct correlation over both where it applies, else the second accumulated onto the first.</summary>
    public static void ForwardPair<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> w, ReadOnlySpan<T> x2, ReadOnlySpan<T> w2, Span<T> y, ConvolutionGeometry g)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (DirectConvolution.Supports(g)) DirectConvolution.ForwardPair(x, w, x2, w2, y, g);
        else
        {
            ForwardImplicitGemm(x, w, y, g);
            ForwardImplicitGemm(x2, w2, y, g, accumulate: true);
        }
    }

    /// <summary><see cref="Forward{T}"/> by implicit im2col GEMM, whatever the geometry (the GEMM accumulates when asked).</summary>
    public static void ForwardImplicitGemm<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> w, Span<T> y, ConvolutionGeometry g, bool accumulate = false) where T : unmanaged, IFloatingPointIeee754<T>
    {
        fixed (T* px = x) fixed (T* pw = w) fixed (T* py = y)
        {
            T* xs = px, ws = pw, ys = py;
            int nr = Gemm.PanelColumns<T>();
            // The weight is the A operand of every image's product: packed once, not once per image.
            T[] packed = Gemm.PrepackA(false, ws, g.K, g.O, g.K);
            try
            {
                fixed (T* pa = packed)
                {
                    T* aPacked = pa;
                    Parallelism.For(g.N, n =>
                        Gemm.Sequential(false, g.O, g.Q, g.K, null, 0, new Columns<T>(xs + (long)n * g.C * g.H * g.W, g), ys + (long)n * g.O * g.Q, g.Q, accumulate, nr, aPacked));
                }
            }
            finally { ArrayPool<T>.Shared.Return(packed); }
        }
    }

    /// <summary>
    /// w̄ [O, C, KH, KW] = Σ_n ȳ_n·cols(x_n)ᵀ, computed transposed as w̄ᵀ [K, O] = Σ_n cols(x_n)·ȳ_nᵀ: the im2col
    /// rows become the GEMM's A panels (8 rows, so runs of the image land 8 apart, not a whole panel apart) and
    /// ȳ_nᵀ the narrow B; one small transposition at the end.
    /// </summary>
    public static void WeightGradient<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> gy, Span<T> wBar, ConvolutionGeometry g) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (DirectConvolution.Supports(g)) DirectConvolution.WeightGradient(x, gy, wBar, g);
        else WeightGradientImplicitGemm(x, gy, wBar, g);
    }

    /// <summary><see cref="WeightGradient{T}"/> by implicit im2col GEMM, whatever the geometry.</summary>
    public static void WeightGradientImplicitGemm<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> gy, Span<T> wBar, ConvolutionGeometry g) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int chunks = (g.N + ImagesPerChunk - 1) / ImagesPerChunk;
        int size = g.O * g.K;
        T[] partial = ArrayPool<T>.Shared.Rent(chunks * size);
        try
        {
            fixed (T* px = x) fixed (T* pg = gy) fixed (T* pp = partial) fixed (T* pw = wBar)
            {
                T* xs = px, gs = pg, ps = pp;
                Parallelism.For(chunks, chunk =>
                {
                    int n0 = chunk * ImagesPerChunk, n1 = Math.Min(g.N, n0 + ImagesPerChunk);
                    for (int n = n0; n < n1; n++)
                        Gemm.MultiplyWithRows(new ColumnRows<T>(xs + (long)n * g.C * g.H * g.W, g), g.K, g.O, g.Q, true, gs + (long)n * g.O * g.Q, g.Q,
                            ps + (long)chunk * size, g.O, n > n0);
                });
                // Sum the chunks in order into the first, then transpose [K, O] → [O, K].
                var sum = new Span<T>(ps, size);
                for (int c = 1; c < chunks; c++) TensorPrimitives.Add(sum, new ReadOnlySpan<T>(ps + (long)c * size, size), sum);
                for (int k = 0; k < g.K; k++)
                    for (int o = 0; o < g.O; o++) pw[(long)o * g.K + k] = ps[(long)k * g.O + o];
            }
        }
        finally { ArrayPool<T>.Shared.Return(partial); }
    }

    /// <summary>
    /// x̄ [N, C, H, W], the convolution's adjoint in its input: the direct kernels where they apply, else col2im(Wᵀ·ȳ_n)
    /// for each image; with <paramref name="accumulate"/>, x̄ += the result.
    /// </summary>
    public static void InputGradient<T>(ReadOnlySpan<T> gy, ReadOnlySpan<T> w, Span<T> xBar, ConvolutionGeometry g, bool accumulate = false) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (DirectConvolution.Supports(g)) DirectConvolution.InputGradient(gy, w, xBar, g, accumulate);
        else InputGradientImplicitGemm(gy, w, xBar, g, accumulate);
    }

    /// <summary>x̄ = IA(ȳ, w) + IA(ȳ₂, w₂) (a JVP's two terms): one direct correlation over both where it applies, else the second accumulated onto the first.</summary>
    public static void InputGradientPair<T>(ReadOnlySpan<T> gy, ReadOnlySpan<T> w, ReadOnlySpan<T> gy2, ReadOnlySpan<T> w2, Span<T> xBar, ConvolutionGeometry g)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (DirectConvolution.Supports(g)) DirectConvolution.InputGradientPair(gy, w, gy2, w2, xBar, g);
        else
        {
            InputGradientImplicitGemm(gy, w, xBar, g);
            InputGradientImplicitGemm(gy2, w2, xBar, g, accumulate: true);
        }
    }

    /// <summary><see cref="InputGradient{T}"/> by implicit im2col GEMM and col2im, whatever the geometry (col2im adds into x̄ when asked).</summary>
    public static void InputGradientImplicitGemm<T>(ReadOnlySpan<T> gy, ReadOnlySpan<T> w, Span<T> xBar, ConvolutionGeometry g, bool accumulate = false) where T : unmanaged, IFloatingPointIeee754<T>
    {
        fixed (T* pg = gy) fixed (T* pw = w) fixed (T* px = xBar)
        {
            T* gs = pg, ws = pw, xs = px;
            T[] packed = Gemm.PrepackA(true, ws, g.K, g.K, g.O); // Wᵀ, shared by every image
            try
            {
                fixed (T* pa = packed)
                {
                    T* aPacked = pa;
                    Parallelism.For(g.N, n =>
                    {
                        T[] cols = ArrayPool<T>.Shared.Rent(g.K * g.Q);
                        try
                        {
                            fixed (T* cp = cols)
                            {
                                Gemm.MultiplyPrepacked(aPacked, g.K, g.Q, g.O, false, gs + (long)n * g.O * g.Q, g.Q, cp, g.Q, false);
                                ColumnsToImage(cp, xs + (long)n * g.C * g.H * g.W, g, accumulate);
                            }
                        }
                        finally { ArrayPool<T>.Shared.Return(cols); }
                    });
                }
            }
            finally { ArrayPool<T>.Shared.Return(packed); }
        }
    }

    /// <summary>Sums one image's columns [K, Q] back into its planes [C, H, W] (overwriting them, or adding to them).</summary>
    private static void ColumnsToImage<T>(T* cols, T* image, ConvolutionGeometry g, bool accumulate) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (!accumulate) new Span<T>(image, g.C * g.H * g.W).Clear();
        for (int row = 0; row < g.K; row++)
        {
            int ch = row / (g.KH * g.KW), ki = row / g.KW % g.KH, kj = row % g.KW;
            T* plane = image + (long)ch * g.H * g.W;
            T* src = cols + (long)row * g.Q;
            for (int oy = 0; oy < g.OH; oy++, src += g.OW)
            {
                int iy = oy * g.Stride - g.Padding + ki;
                if (iy < 0 || iy >= g.H) continue;
                T* dst = plane + (long)iy * g.W;
                if (g.Stride == 1)
                {
                    int j0 = Math.Max(0, g.Padding - kj), j1 = Math.Min(g.OW, g.W + g.Padding - kj);
                    if (j1 > j0)
                        TensorPrimitives.Add(new ReadOnlySpan<T>(dst + j0 - g.Padding + kj, j1 - j0), new ReadOnlySpan<T>(src + j0, j1 - j0),
                            new Span<T>(dst + j0 - g.Padding + kj, j1 - j0));
                }
                else
                    for (int ox = 0; ox < g.OW; ox++)
                    {
                        int ix = ox * g.Stride - g.Padding + kj;
                        if (ix >= 0 && ix < g.W) dst[ix] += src[ox];
                    }
            }
        }
    }

    /// <summary>
    /// Copies input row <paramref name="iy"/>'s values for output columns [ox0, ox0+count) at kernel column
    /// <paramref name="kj"/> to dst[0], dst[step], …; zeros where the window falls in the padding.
    /// </summary>
    private static void RowRun<T>(T* plane, int iy, int ox0, int count, int kj, ConvolutionGeometry g, T* dst, int step) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (iy < 0 || iy >= g.H)
        {
            for (int t = 0; t < count; t++) dst[(long)t * step] = T.Zero;
            return;
        }
        T* row = plane + (long)iy * g.W;
        int shift = kj - g.Padding;
        if (g.Stride == 1)
        {
            // Input columns ox + shift: one contiguous run, zeros where it leaves [0, W).
            int t0 = Math.Clamp(-shift - ox0, 0, count), t1 = Math.Clamp(g.W - shift - ox0, t0, count);
            T* src = row + ox0 + shift;
            if (step == 1)
            {
                for (int t = 0; t < t0; t++) dst[t] = T.Zero;
                new ReadOnlySpan<T>(src + t0, t1 - t0).CopyTo(new Span<T>(dst + t0, t1 - t0));
                for (int t = t1; t < count; t++) dst[t] = T.Zero;
            }
            else
            {
                for (int t = 0; t < t0; t++) dst[(long)t * step] = T.Zero;
                for (int t = t0; t < t1; t++) dst[(long)t * step] = src[t];
                for (int t = t1; t < count; t++) dst[(long)t * step] = T.Zero;
            }
            return;
        }
        for (int t = 0; t < count; t++)
        {
            int ix = (ox0 + t) * g.Stride + shift;
            dst[(long)t * step] = ix >= 0 && ix < g.W ? row[ix] : T.Zero;
        }
    }

    /// <summary>
    /// Splits output positions [q0, q0+count) into runs along output rows: (oy, ox, length, offset from q0). Done
    /// once per panel, so the per-depth loops below carry no divisions (rows of 7 or 8 outputs make many runs).
    /// </summary>
    private static int Runs(int q0, int count, int ow, Span<(int Oy, int Ox, int Length, int Offset)> runs)
    {
        int r = 0;
        for (int q = q0; q < q0 + count;)
        {
            int oy = q / ow, ox = q % ow, length = Math.Min(ow - ox, q0 + count - q);
            runs[r++] = (oy, ox, length, q - q0);
            q += length;
        }
        return r;
    }

    /// <summary>op(B) = cols(x_n) [K, Q]: row k = (c, ki, kj), column q = (oy, ox).</summary>
    private readonly struct Columns<T>(T* image, ConvolutionGeometry g) : Gemm.IPanelSource<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        public void Pack(int p0, int kc, int j0, int cols, int width, T* dst)
        {
            Span<(int Oy, int Ox, int Length, int Offset)> runs = stackalloc (int, int, int, int)[cols];
            int count = Runs(j0, cols, g.OW, runs);
            for (int p = 0; p < kc; p++)
            {
                int k = p0 + p, ch = k / (g.KH * g.KW), ki = k / g.KW % g.KH, kj = k % g.KW;
                T* plane = image + (long)ch * g.H * g.W;
                T* d = dst + (long)p * width;
                for (int r = 0; r < count; r++)
                {
                    var (oy, ox, length, offset) = runs[r];
                    RowRun(plane, oy * g.Stride - g.Padding + ki, ox, length, kj, g, d + offset, 1);
                }
                for (int j = cols; j < width; j++) d[j] = T.Zero;
            }
        }
    }

    /// <summary>op(A) = cols(x_n) [K, Q] as MR-row panels: row k = (c, ki, kj), depth q = (oy, ox).</summary>
    private readonly struct ColumnRows<T>(T* image, ConvolutionGeometry g) : Gemm.IRowPanelSource<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        public void Pack(int i0, int rows, int p0, int kc, T* dst)
        {
            const int mr = 8;
            Span<(int Oy, int Ox, int Length, int Offset)> runs = stackalloc (int, int, int, int)[kc];
            int count = Runs(p0, kc, g.OW, runs);
            for (int i = 0; i < rows; i++)
            {
                int k = i0 + i, ch = k / (g.KH * g.KW), ki = k / g.KW % g.KH, kj = k % g.KW;
                T* plane = image + (long)ch * g.H * g.W;
                for (int r = 0; r < count; r++)
                {
                    var (oy, ox, length, offset) = runs[r];
                    RowRun(plane, oy * g.Stride - g.Padding + ki, ox, length, kj, g, dst + (long)offset * mr + i, mr);
                }
            }
            for (int i = rows; i < mr; i++)
                for (int p = 0; p < kc; p++) dst[(long)p * mr + i] = T.Zero;
        }
    }
}
