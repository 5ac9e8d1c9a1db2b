using System.Buffers;
using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Curvature.Kernels.Cpu;

/// <summary>
/// Convolution on the zero-padded image's grid (the "shifted GEMM" form of direct convolution). With one
/// image padded onto rows of length Wr and the outputs numbered p = oy·Wr + ox over that width, the im2col element
/// (k = (c, ki, kj), p) is xp[c·plane + ki·Wr + kj + p]: each row of the im2col matrix is a contiguous run of the
/// padded image at a fixed offset. The micro-kernels read those runs in place with unaligned vector loads, so
/// nothing is packed but the weights (small) and, for the weight gradient, the output gradient; the price is
/// KW − 1 − P discarded outputs per row with padding P, rows sharing their padding (3 % of the work at 32×32, 12 % at
/// 7×7; see <see cref="Grid"/>). The input gradient is the same correlation of the padded output gradient with the
/// flipped, transposed weights. Every output element is summed over k (and, for the weight gradient, over images in
/// fixed chunks) in a fixed order, so results are bitwise the same on any thread count. Stride 2 splits each padded
/// channel into its four phase planes, which turns the strided taps into fixed offsets again (see <see cref="Grid"/>);
/// its input gradient runs phase by phase of x̄ (see <see cref="StridedInputGradient"/>). Needs AVX-512 (two 512-bit
/// vectors of accumulators per row, eight rows).
/// </summary>
public static unsafe class DirectConvolution
{
    private const int MR = 8;
    private const int ImagesPerChunk = 8;

    /// <summary>
    /// Whether this CPU and geometry can use the direct kernels: AVX-512, stride 1 or 2, padding below the kernel size.
    /// </summary>
    public static bool Supports(ConvolutionGeometry g) =>
        Vector512.IsHardwareAccelerated && g.Stride is 1 or 2 && g.Padding < g.KH && g.Padding < g.KW;

    /// <summary>
    /// A padded image laid out for a correlation with a KH×KW kernel at stride s. Stride 1: each channel's padded
    /// plane Hp rows of W + PadW, each row its left padding then its pixels, the right padding being the next row's
    /// left (reads past a row's end land in those zeros), so only KW − 1 − PadW columns per row are discarded outputs
    /// (one of 33 at 32×32, one of 17 at 16×16, instead of two of 34 and 18). Stride 2: each channel split into phase
    /// planes of ⌈Hp/s⌉×⌈Wp/s⌉ (phase (r, t) holds the padded pixels (s·i + r, s·j + t)), so tap (ki, kj) of output
    /// (oy, ox) is pixel (oy + ki/s, ox + kj/s) of phase (ki mod s, kj mod s): again a fixed offset from the output's
    /// position on the plane grid, and the stride-1 kernels apply unchanged. Only the phases some tap reads are laid
    /// out (r &lt; KH, t &lt; KW): all four for a 3×3 kernel, one for a 1×1, whose grid is then just the subsampled image.
    /// A grid may hold several images side by side (<see cref="Images"/>): each plane row is their rows in turn (at
    /// stride 1 each after its left padding), so small images fill whole tiles (8×8: 72 positions per image round
    /// up to 80, four images' 288 to 288).
    /// </summary>
    private readonly record struct Grid(int Channels, int H, int W, int PadH, int PadW, int KH, int KW, int Stride = 1, int Images = 1)
    {
        private int Hp => H + 2 * PadH;
        private int Wp => W + 2 * PadW;
        private int PlaneH => (Hp + Stride - 1) / Stride;
        /// <summary>Phases laid out per axis: those some tap reads.</summary>
        private int PhasesH => Math.Min(Stride, KH);
        private int PhasesW => Math.Min(Stride, KW);
        /// <summary>One image's span of a plane row: image j's outputs of row oy are positions oy·PlaneW + j·ImageW + ox.</summary>
        public int ImageW => Stride == 1 ? W + PadW : (Wp + Stride - 1) / Stride;
        /// <summary>Row length of the planes: output positions are numbered p = oy·PlaneW + ox.</summary>
        public int PlaneW => Images * ImageW;
        private int PlaneSize => PlaneH * PlaneW;
        /// <summary>Elements of all the channels' planes (where a second image's channels start in a pair's grid).</summary>
        public int PlanesLength => Channels * PhasesH * PhasesW * PlaneSize;
        public int OH => (Hp - KH) / Stride + 1;
        public int OW => (Wp - KW) / Stride + 1;
        /// <summary>Output positions on the plane grid, discarded columns included.</summary>
        public int Positions => OH * PlaneW;
        /// <summary>The last tile reads up to KW − 1 + one panel past the planes: zeros, never stored.</summary>
        public int Length<T>() => PlanesLength + KW + 2 * Vector512<T>.Count;

        /// <summary>off[k] for k = (c, ki, kj) in weight order.</summary>
        public int[] Offsets()
        {
            var off = new int[Channels * KH * KW];
            for (int c = 0, k = 0; c < Channels; c++)
                for (int ki = 0; ki < KH; ki++)
                    for (int kj = 0; kj < KW; kj++)
                        off[k++] = ((c * PhasesH + ki % Stride) * PhasesW + kj % Stride) * PlaneSize + ki / Stride * PlaneW + kj / Stride;
            return off;
        }

        /// <summary>Copies one image [Channels, H, W] into its zero-padded planes.</summary>
        public void Pad<T>(T* image, T* grid) where T : unmanaged => Pad(image, 0, 1, grid);

        /// <summary>
        /// Copies <paramref name="present"/> images [Channels, H, W], <paramref name="imageStride"/> apart, into the
        /// zero-padded planes (the grid's places past them zero), writing each grid element once in order (no
        /// clear-then-copy; no division in the inner loops: at stride 2 the per-element modulo was most of the cost).
        /// </summary>
        public void Pad<T>(T* image, long imageStride, int present, T* grid) where T : unmanaged
        {
            T* dst = grid;
            // The record's computed sizes held in locals: the loops below run per row.
            int s = Stride, images = Images, imageW = ImageW, planeW = PlaneW, planeH = PlaneH;
            if (s == 1)
            {
                for (int c = 0; c < Channels; c++)
                {
                    Zero(dst, PadH * planeW);
                    dst += PadH * planeW;
                    for (int y = 0; y < H; y++)
                        for (int j = 0; j < images; j++, dst += imageW)
                        {
                            Zero(dst, PadW);
                            if (j < present) Copy(image + j * imageStride + ((long)c * H + y) * W, dst + PadW, W);
                            else Zero(dst + PadW, W);
                        }
                    Zero(dst, PadH * planeW);
                    dst += PadH * planeW;
                }
            }
            else
            {
                for (int c = 0; c < Channels; c++)
                    for (int r = 0; r < PhasesH; r++)
                        for (int t = 0; t < PhasesW; t++)
                        {
                            // Phase (r, t), pixel (i, j) is padded pixel (s·i + r, s·j + t), image pixel (s·i + r − PadH, s·j + t − PadW).
                            int j0 = Math.Max(0, CeilDiv(PadW - t, s)), j1 = Math.Min(imageW, CeilDiv(W + PadW - t, s));
                            int x0 = s * j0 + t - PadW;
                            for (int i = 0; i < planeH; i++)
                            {
                                int y = s * i + r - PadH;
                                bool inside = y >= 0 && y < H && j0 < j1;
                                for (int k = 0; k < images; k++, dst += imageW)
                                {
                                    if (!inside || k >= present)
                                    {
                                        Zero(dst, imageW);
                                        continue;
                                    }
                                    Zero(dst, j0);
                                    T* src = image + k * imageStride + ((long)c * H + y) * W + x0;
                                    for (int j = j0; j < j1; j++, src += s) dst[j] = *src;
                                    Zero(dst + j1, imageW - j1);
                                }
                            }
                        }
            }
            Zero(dst, (int)(grid + Length<T>() - dst));
        }

        private static int CeilDiv(int a, int b) => a <= 0 ? -(-a / b) : (a + b - 1) / b;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void Copy<T>(T* src, T* dst, int n) where T : unmanaged
        {
            int i = 0;
            for (; i <= n - Vector512<T>.Count; i += Vector512<T>.Count) Vector512.Store(Vector512.Load(src + i), dst + i);
            for (; i < n; i++) dst[i] = src[i];
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void Zero<T>(T* dst, int n) where T : unmanaged
        {
            int i = 0;
            for (; i <= n - Vector512<T>.Count; i += Vector512<T>.Count) Vector512.Store(Vector512<T>.Zero, dst + i);
            for (; i < n; i++) dst[i] = default;
        }
    }

    /// <summary>y [N, O, OH, OW] = conv(x [N, C, H, W], w [O, C, KH, KW]); with <paramref name="accumulate"/>, y += conv(x, w).</summary>
    public static void Forward<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> w, Span<T> y, ConvolutionGeometry g, bool accumulate = false) where T : unmanaged, IFloatingPointIeee754<T> =>
        Forward(x, w, default, default, y, g, accumulate);

    /// <summary>
    /// y = conv(x, w) + conv(x₂, w₂), one convolution over the channels of both: each image and its partner padded
    /// onto one grid of 2C channels, the weights packed as one depth of 2K, so the sum is formed in the accumulators
    /// and the output written once (a JVP's two terms, f(ẋ, w) + f(x, ẇ)).
    /// </summary>
    public static void ForwardPair<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> w, ReadOnlySpan<T> x2, ReadOnlySpan<T> w2, Span<T> y, ConvolutionGeometry g)
        where T : unmanaged, IFloatingPointIeee754<T> => Forward(x, w, x2, w2, y, g, accumulate: false);

    private static void Forward<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> w, ReadOnlySpan<T> x2, ReadOnlySpan<T> w2, Span<T> y, ConvolutionGeometry g, bool accumulate)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        Require(Supports(g), g);
        int sources = x2.IsEmpty ? 1 : 2;
        var grid = new Grid(sources * g.C, g.H, g.W, g.Padding, g.Padding, g.KH, g.KW, g.Stride);
        grid = grid with { Images = ImagesPerGrid<T>(grid, g.N) };
        fixed (T* px = x) fixed (T* pw = w) fixed (T* px2 = x2) fixed (T* pw2 = w2) fixed (T* py = y)
        {
            T* xs = px, ys = py, ws = pw, ws2 = pw2;
            T[] packed = PackRows(g.O, sources * g.K, (o, k) => k < g.K ? ws[(long)o * g.K + k] : ws2[(long)o * g.K + k - g.K]);
            try { Correlate(xs, px2, g.C * g.H * g.W, ys, g.O * g.Q, g.N, grid, packed, g.O, accumulate); }
            finally { ArrayPool<T>.Shared.Return(packed); }
        }
    }

    /// <summary>
    /// x̄ [N, C, H, W] from ȳ [N, O, OH, OW]: the correlation of ȳ padded by KH − 1 − P (KW − 1 − P) with
    /// w'[c, o, ki, kj] = w[o, c, KH − 1 − ki, KW − 1 − kj] (stride 1: the transposed convolution is a convolution);
    /// stride 2 by phases (<see cref="StridedInputGradient"/>). With <paramref name="accumulate"/>, x̄ += the result.
    /// </summary>
    public static void InputGradient<T>(ReadOnlySpan<T> gy, ReadOnlySpan<T> w, Span<T> xBar, ConvolutionGeometry g, bool accumulate = false) where T : unmanaged, IFloatingPointIeee754<T>
    {
        Require(Supports(g), g);
        if (g.Stride > 1) StridedInputGradient(gy, w, xBar, g, accumulate);
        else InputGradient(gy, w, default, default, xBar, g, accumulate);
    }

    /// <summary>
    /// x̄ = IA(ȳ, w) + IA(ȳ₂, w₂): at stride 1 one correlation over the 2·O channels of both output gradients (see
    /// <see cref="ForwardPair"/>); at stride 2 the second phase-wise pass accumulates onto the first.
    /// </summary>
    public static void InputGradientPair<T>(ReadOnlySpan<T> gy, ReadOnlySpan<T> w, ReadOnlySpan<T> gy2, ReadOnlySpan<T> w2, Span<T> xBar, ConvolutionGeometry g)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        Require(Supports(g), g);
        if (g.Stride > 1)
        {
            StridedInputGradient(gy, w, xBar, g, accumulate: false);
            StridedInputGradient(gy2, w2, xBar, g, accumulate: true);
        }
        else InputGradient(gy, w, gy2, w2, xBar, g, accumulate: false);
    }

    private static void InputGradient<T>(ReadOnlySpan<T> gy, ReadOnlySpan<T> w, ReadOnlySpan<T> gy2, ReadOnlySpan<T> w2, Span<T> xBar, ConvolutionGeometry g, bool accumulate)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int sources = gy2.IsEmpty ? 1 : 2;
        var grid = new Grid(sources * g.O, g.OH, g.OW, g.KH - 1 - g.Padding, g.KW - 1 - g.Padding, g.KH, g.KW);
        grid = grid with { Images = ImagesPerGrid<T>(grid, g.N) };
        int taps = g.KH * g.KW, depth = g.O * taps;
        fixed (T* pg = gy) fixed (T* pg2 = gy2) fixed (T* pw = w) fixed (T* pw2 = w2) fixed (T* px = xBar)
        {
            T* gs = pg, xs = px, ws = pw, ws2 = pw2;
            // Row c, depth k' = (source, o, ki, kj) in the grid's offset order.
            T[] packed = PackRows(g.C, sources * depth, (c, k) =>
            {
                T* from = k < depth ? ws : ws2;
                k %= depth;
                int o = k / taps, ki = k / g.KW % g.KH, kj = k % g.KW;
                return from[(((long)o * g.C + c) * g.KH + g.KH - 1 - ki) * g.KW + g.KW - 1 - kj];
            });
            try { Correlate(gs, pg2, g.O * g.Q, xs, g.C * g.H * g.W, g.N, grid, packed, g.C, accumulate); }
            finally { ArrayPool<T>.Shared.Return(packed); }
        }
    }

    /// <summary>
    /// x̄ at stride s, one phase of x̄ at a time. Pixel y = s·i + r of x̄ (r = y mod s) receives w[.., ki, ..]·ȳ[.., oy, ..]
    /// where s·oy + ki = y + P, so ki ≡ r + P (mod s): with ki = s·a + ρ, ρ = (r + P) mod s and d = (r + P − ρ)/s,
    /// x̄_r[i] = Σ_a w[s·a + ρ]·ȳ[i + d − a], a stride-1 correlation of ȳ with that phase's sub-kernel (2×2, 2×1, 1×2
    /// and 1×1 for a 3×3 kernel at stride 2), and likewise along the width. ȳ is padded once, enough for every phase;
    /// each phase reads its taps at fixed offsets on that grid and writes exactly its own pixels of x̄ (⌈H/s⌉×⌈W/s⌉
    /// outputs, no discarded ones but the grid's few padding columns); a phase without taps (three of a 1×1
    /// kernel's four) is zero.
    /// </summary>
    private static void StridedInputGradient<T>(ReadOnlySpan<T> gy, ReadOnlySpan<T> w, Span<T> xBar, ConvolutionGeometry g, bool accumulate)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int s = g.Stride;
        // One axis of a phase: its taps k = s·a + ρ, the shift d, and the pixels it covers.
        (int Rho, int Taps, int D, int Count) Axis(int r, int kernel, int size)
        {
            int rho = (r + g.Padding) % s;
            return (rho, rho < kernel ? (kernel - rho + s - 1) / s : 0, (r + g.Padding - rho) / s, (size - r + s - 1) / s);
        }
        // Padding of ȳ that every phase's reads ȳ[i + d − a] fit in: above, d − a ≥ −pad; below, i + d < OH + pad.
        int pad = 0;
        for (int r = 0; r < s; r++)
        {
            var (_, th, dh, nh) = Axis(r, g.KH, g.H);
            var (_, tw, dw, nw) = Axis(r, g.KW, g.W);
            if (th > 0) pad = Math.Max(pad, Math.Max(th - 1 - dh, nh - 1 + dh - (g.OH - 1)));
            if (tw > 0) pad = Math.Max(pad, Math.Max(tw - 1 - dw, nw - 1 + dw - (g.OW - 1)));
        }
        var grid = new Grid(g.O, g.OH, g.OW, pad, pad, 2 * pad + 1, 2 * pad + 1);
        int planeSize = (g.OH + 2 * pad) * grid.PlaneW;
        int rowsOut = (g.H + s - 1) / s;
        int panels = Gemm.RoundUp(rowsOut * grid.PlaneW, Vector512<T>.Count), padded = Gemm.RoundUp(g.C, MR);
        // The last tile of the last channel may read up to 2·pad rows and columns and a panel past its outputs.
        int length = Math.Max(grid.Length<T>(), (g.O - 1) * planeSize + 2 * pad * (grid.PlaneW + 1) + panels + 2 * Vector512<T>.Count);
        var phases = new List<(int R, int T, int Depth, T[] Packed, int[] Offsets)>();
        fixed (T* pw = w)
        {
            T* ws = pw;
            for (int r = 0; r < s; r++)
                for (int t = 0; t < s; t++)
                {
                    var (rh, th, dh, _) = Axis(r, g.KH, g.H);
                    var (rw, tw, dw, _) = Axis(t, g.KW, g.W);
                    if (th * tw == 0) continue;
                    // Depth k = (o, a, b); tap (a, b) reads ȳ[i + d − a, j + d' − b], padded by pad.
                    int[] offsets = new int[g.O * th * tw];
                    for (int o = 0, k = 0; o < g.O; o++)
                        for (int a = 0; a < th; a++)
                            for (int b = 0; b < tw; b++)
                                offsets[k++] = o * planeSize + (dh - a + pad) * grid.PlaneW + dw - b + pad;
                    int taps = th * tw;
                    T[] packed = PackRows(g.C, g.O * taps, (c, k) =>
                    {
                        int o = k / taps, a = k % taps / tw, b = k % tw;
                        return ws[(((long)o * g.C + c) * g.KH + s * a + rh) * g.KW + s * b + rw];
                    });
                    phases.Add((r, t, g.O * taps, packed, offsets));
                }
        }
        try
        {
            fixed (T* pg = gy) fixed (T* px = xBar)
            {
                T* gs = pg, xs = px;
                bool clear = !accumulate && phases.Count < s * s;
                Parallelism.For(g.N, n =>
                {
                    T[] image = ArrayPool<T>.Shared.Rent(length);
                    T[] outputs = ArrayPool<T>.Shared.Rent(padded * panels);
                    try
                    {
                        fixed (T* xp = image) fixed (T* yp = outputs)
                        {
                            grid.Pad(gs + (long)n * g.O * g.Q, xp);
                            new Span<T>(xp + grid.Length<T>(), length - grid.Length<T>()).Clear();
                            T* dst = xs + (long)n * g.C * g.H * g.W;
                            if (clear) new Span<T>(dst, g.C * g.H * g.W).Clear();
                            foreach (var phase in phases)
                            {
                                fixed (T* pa = phase.Packed) fixed (int* po = phase.Offsets)
                                    CorrelateImage(phase.Depth, pa, padded, xp, po, yp, panels);
                                ScatterPhase(yp, panels, grid.PlaneW, phase.R, phase.T, g, dst, accumulate);
                            }
                        }
                    }
                    finally
                    {
                        ArrayPool<T>.Shared.Return(outputs);
                        ArrayPool<T>.Shared.Return(image);
                    }
                });
            }
        }
        finally
        {
            foreach (var phase in phases) ArrayPool<T>.Shared.Return(phase.Packed);
        }
    }

    /// <summary>x̄[c, s·i + r, s·j + t] (+)= y[c, i·rowLength + j] over the phase's pixels.</summary>
    private static void ScatterPhase<T>(T* y, int panels, int rowLength, int r, int t, ConvolutionGeometry g, T* xBar, bool accumulate)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int s = g.Stride, rows = (g.H - r + s - 1) / s, cols = (g.W - t + s - 1) / s;
        for (int c = 0; c < g.C; c++)
            for (int i = 0; i < rows; i++)
            {
                T* src = y + (long)c * panels + i * rowLength;
                T* row = xBar + ((long)c * g.H + s * i + r) * g.W + t;
                if (accumulate)
                    for (int j = 0; j < cols; j++) row[s * j] += src[j];
                else
                    for (int j = 0; j < cols; j++) row[s * j] = src[j];
            }
    }

    /// <summary>
    /// w̄ [O, C, KH, KW] = Σ_n Σ_p ȳ_n[o, p]·xp_n[off(k) + p], computed transposed (w̄ᵀ [K, O]): eight rows k read
    /// as broadcasts from their runs of the padded image, ȳ_nᵀ packed once per image as [p, O] with zeros in the
    /// discarded columns. Images are summed in fixed chunks, the chunks in order.
    /// </summary>
    public static void WeightGradient<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> gy, Span<T> wBar, ConvolutionGeometry g) where T : unmanaged, IFloatingPointIeee754<T>
    {
        Require(Supports(g), g);
        var grid = new Grid(g.C, g.H, g.W, g.Padding, g.Padding, g.KH, g.KW, g.Stride);
        int lanes = Vector512<T>.Count;
        int width = Gemm.RoundUp(g.O, lanes), rows = Gemm.RoundUp(g.K, MR);
        int chunks = (g.N + ImagesPerChunk - 1) / ImagesPerChunk;
        long size = (long)rows * width;
        int[] offsets = grid.Offsets();
        T[] partial = ArrayPool<T>.Shared.Rent(checked((int)(chunks * size)));
        try
        {
            fixed (T* px = x) fixed (T* pg = gy) fixed (T* pp = partial) fixed (T* pw = wBar) fixed (int* po = offsets)
            {
                T* xs = px, gs = pg, ps = pp;
                int* off = po;
                Parallelism.For(chunks, chunk =>
                {
                    T[] image = ArrayPool<T>.Shared.Rent(grid.Length<T>());
                    T[] transposed = ArrayPool<T>.Shared.Rent(grid.Positions * width);
                    try
                    {
                        fixed (T* xp = image) fixed (T* gt = transposed)
                        {
                            T* c0 = ps + chunk * size;
                            int n0 = chunk * ImagesPerChunk, n1 = Math.Min(g.N, n0 + ImagesPerChunk);
                            int* tile = stackalloc int[MR];
                            for (int n = n0; n < n1; n++)
                            {
                                grid.Pad(xs + (long)n * g.C * g.H * g.W, xp);
                                TransposeOnGrid(gs + (long)n * g.O * g.Q, g.O, g.OH, g.OW, grid.PlaneW, gt, width);
                                for (int k0 = 0; k0 < g.K; k0 += MR)
                                {
                                    // Rows past K repeat the last one; their sums land in padding rows, never read.
                                    for (int i = 0; i < MR; i++) tile[i] = off[Math.Min(k0 + i, g.K - 1)];
                                    for (int o0 = 0; o0 < width; o0 += 2 * lanes)
                                    {
                                        T* c = c0 + (long)k0 * width + o0;
                                        if (width - o0 >= 2 * lanes) WeightTile2(grid.Positions, xp, tile, gt + o0, width, c, width, n > n0);
                                        else WeightTile1(grid.Positions, xp, tile, gt + o0, width, c, width, n > n0);
                                    }
                                }
                            }
                        }
                    }
                    finally
                    {
                        ArrayPool<T>.Shared.Return(transposed);
                        ArrayPool<T>.Shared.Return(image);
                    }
                });
                var sum = new Span<T>(ps, (int)size);
                for (int c = 1; c < chunks; c++) System.Numerics.Tensors.TensorPrimitives.Add(sum, new ReadOnlySpan<T>(ps + c * size, (int)size), sum);
                for (int k = 0; k < g.K; k++)
                    for (int o = 0; o < g.O; o++) pw[(long)o * g.K + k] = ps[(long)k * width + o];
            }
        }
        finally { ArrayPool<T>.Shared.Return(partial); }
    }

    private static void Require(bool supported, ConvolutionGeometry g)
    {
        if (!supported)
            throw new NotSupportedException($"Direct convolution needs AVX-512, stride 1 or 2 and padding below the kernel size; got stride {g.Stride}, padding {g.Padding}, kernel {g.KH}×{g.KW}.");
    }

    /// <summary>A [rows, depth] packed as panels of MR rows, depth-major within a panel (zero rows past the end). Rent; return when done.</summary>
    private static T[] PackRows<T>(int rows, int depth, Func<int, int, T> value) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int padded = Gemm.RoundUp(rows, MR);
        var packed = ArrayPool<T>.Shared.Rent(padded * depth);
        for (int r0 = 0; r0 < padded; r0 += MR)
            for (int k = 0; k < depth; k++)
                for (int i = 0; i < MR; i++)
                    packed[r0 * depth + k * MR + i] = r0 + i < rows ? value(r0 + i, k) : T.Zero;
        return packed;
    }

    /// <summary>
    /// For each of <paramref name="count"/> images, <see cref="Grid.Images"/> at a time: pad <paramref name="source"/>'s
    /// images onto the grid (and, when <paramref name="source2"/> is given, its images onto the grid's second half of
    /// channels), correlate them with the packed rows, and compact the outputs (dropping the discarded columns) into
    /// <paramref name="target"/>.
    /// </summary>
    private static void Correlate<T>(T* source, T* source2, int sourceStride, T* target, int targetStride, int count, Grid grid, T[] packed, int rows, bool accumulate)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var half = grid with { Channels = grid.Channels / 2 };
        int depth = grid.Channels * grid.KH * grid.KW, images = grid.Images;
        int panels = Gemm.RoundUp(grid.Positions, Vector512<T>.Count), padded = Gemm.RoundUp(rows, MR);
        int[] offsets = grid.Offsets();
        // Without discarded columns (a 1×1 kernel at stride 2) an image's outputs of a row are one run.
        int planeW = grid.PlaneW, imageW = grid.ImageW;
        int runs = planeW == grid.OW ? 1 : grid.OH, run = grid.OH * grid.OW / runs;
        fixed (T* pa = packed) fixed (int* po = offsets)
        {
            T* a = pa;
            int* off = po;
            Parallelism.For((count + images - 1) / images, item =>
            {
                int n0 = item * images, present = Math.Min(images, count - n0);
                T[] image = ArrayPool<T>.Shared.Rent(grid.Length<T>());
                T[] outputs = ArrayPool<T>.Shared.Rent(padded * panels);
                try
                {
                    fixed (T* xp = image) fixed (T* yp = outputs)
                    {
                        if (source2 is null) grid.Pad(source + (long)n0 * sourceStride, sourceStride, present, xp);
                        else
                        {
                            half.Pad(source + (long)n0 * sourceStride, sourceStride, present, xp);
                            half.Pad(source2 + (long)n0 * sourceStride, sourceStride, present, xp + half.PlanesLength);
                        }
                        CorrelateImage(depth, a, padded, xp, off, yp, panels);
                        for (int j = 0; j < present; j++)
                        {
                            T* dst = target + (long)(n0 + j) * targetStride;
                            for (int r = 0; r < rows; r++)
                                for (int i = 0; i < runs; i++)
                                {
                                    var row = new ReadOnlySpan<T>(yp + (long)r * panels + i * planeW + j * imageW, run);
                                    var into = new Span<T>(dst + ((long)r * runs + i) * run, run);
                                    if (accumulate) TensorPrimitives.Add(row, into, into);
                                    else row.CopyTo(into);
                                }
                        }
                    }
                }
                finally
                {
                    ArrayPool<T>.Shared.Return(outputs);
                    ArrayPool<T>.Shared.Return(image);
                }
            });
        }
    }

    /// <summary>
    /// Images per grid: the count of {1, 2, 4} that computes the fewest two-vector tiles per image (ties to
    /// fewer), within 256 KiB of grid so the padded images stay in L2. Small images gain: 8×8 computes 80 → 72
    /// positions per image, with no one-vector tile.
    /// </summary>
    private static int ImagesPerGrid<T>(Grid grid, int count) where T : unmanaged
    {
        int best = 1, tile = 2 * Vector512<T>.Count;
        double bestCost = double.MaxValue;
        for (int k = 1; k <= Math.Min(4, count); k *= 2)
        {
            var candidate = grid with { Images = k };
            if (k > 1 && (long)candidate.Length<T>() * Unsafe.SizeOf<T>() > 256 << 10) break;
            double cost = Gemm.RoundUp(candidate.Positions, tile) / (double)k;
            if (cost < bestCost) (best, bestCost) = (k, cost);
        }
        return best;
    }

    /// <summary>
    /// y[rows, panels] = a[rows, depth]·(the runs of the padded image xp at off[k]): every row panel against every
    /// two-vector tile of positions, the last tile one vector wide when that covers the rest (8×8 images: 80 = 2·32 + 16).
    /// </summary>
    private static void CorrelateImage<T>(int depth, T* a, int paddedRows, T* xp, int* off, T* y, int panels) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int w = Vector512<T>.Count;
        for (int r0 = 0; r0 < paddedRows; r0 += MR)
            for (int p0 = 0; p0 < panels; p0 += 2 * w)
            {
                if (panels - p0 > w) Tile(depth, a + (long)r0 * depth, xp + p0, off, y + (long)r0 * panels + p0, panels);
                else HalfTile(depth, a + (long)r0 * depth, xp + p0, off, y + (long)r0 * panels + p0, panels);
            }
    }

    /// <summary>
    /// gt[p, o] = ȳ[o, oy, ox] at p = oy·Wp + ox, zero in the discarded columns (ox ≥ OW) and past O. In float32 with
    /// AVX-512, blocks of 16 channels × 16 positions are transposed in registers (a scalar scatter cost as much as the
    /// products for 16-channel layers, whose gt outgrows L1); the rest element by element.
    /// </summary>
    private static void TransposeOnGrid<T>(T* gy, int o, int oh, int ow, int wp, T* gt, int width) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (typeof(T) != typeof(float) || !Avx512F.IsSupported || o < 16 || ow < 16)
        {
            new Span<T>(gt, oh * wp * width).Clear();
            for (int c = 0; c < o; c++)
            {
                T* src = gy + (long)c * oh * ow;
                for (int oy = 0; oy < oh; oy++)
                    for (int ox = 0; ox < ow; ox++) gt[(long)(oy * wp + ox) * width + c] = src[oy * ow + ox];
            }
            return;
        }
        float* g = (float*)gy, t = (float*)gt;
        int plane = oh * ow, blocksC = o / 16 * 16, blocksX = ow / 16 * 16;
        for (int oy = 0; oy < oh; oy++)
        {
            float* row = t + (long)oy * wp * width;
            for (int ox0 = 0; ox0 < blocksX; ox0 += 16)
                for (int c0 = 0; c0 < blocksC; c0 += 16)
                    Transpose16(g + (long)c0 * plane + oy * ow + ox0, plane, row + ox0 * width + c0, width);
            // Channels past the last whole block, positions past the last whole block, zeros past O and OW.
            for (int ox = 0; ox < wp; ox++)
            {
                float* dst = row + ox * width;
                int c = ox < blocksX ? blocksC : 0;
                if (ox < ow)
                    for (; c < o; c++) dst[c] = g[(long)c * plane + oy * ow + ox];
                for (; c < width; c++) dst[c] = 0;
            }
        }
    }

    /// <summary>dst[i·dstStride + j] = src[j·srcStride + i] for a 16×16 float block, in registers (unpack, shuffle, then two 128-bit lane shuffles).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Transpose16(float* src, int srcStride, float* dst, int dstStride)
    {
        Vector512<float> r0 = Avx512F.LoadVector512(src), r1 = Avx512F.LoadVector512(src + srcStride);
        Vector512<float> r2 = Avx512F.LoadVector512(src + 2 * srcStride), r3 = Avx512F.LoadVector512(src + 3 * srcStride);
        Vector512<float> r4 = Avx512F.LoadVector512(src + 4 * srcStride), r5 = Avx512F.LoadVector512(src + 5 * srcStride);
        Vector512<float> r6 = Avx512F.LoadVector512(src + 6 * srcStride), r7 = Avx512F.LoadVector512(src + 7 * srcStride);
        Vector512<float> r8 = Avx512F.LoadVector512(src + 8 * srcStride), r9 = Avx512F.LoadVector512(src + 9 * srcStride);
        Vector512<float> r10 = Avx512F.LoadVector512(src + 10 * srcStride), r11 = Avx512F.LoadVector512(src + 11 * srcStride);
        Vector512<float> r12 = Avx512F.LoadVector512(src + 12 * srcStride), r13 = Avx512F.LoadVector512(src + 13 * srcStride);
        Vector512<float> r14 = Avx512F.LoadVector512(src + 14 * srcStride), r15 = Avx512F.LoadVector512(src + 15 * srcStride);
        // Interleave pairs of rows, then pairs of pairs: each 128-bit lane holds a 4×4 block transposed.
        Vector512<float> t0 = Avx512F.UnpackLow(r0, r1), t1 = Avx512F.UnpackHigh(r0, r1), t2 = Avx512F.UnpackLow(r2, r3), t3 = Avx512F.UnpackHigh(r2, r3);
        Vector512<float> t4 = Avx512F.UnpackLow(r4, r5), t5 = Avx512F.UnpackHigh(r4, r5), t6 = Avx512F.UnpackLow(r6, r7), t7 = Avx512F.UnpackHigh(r6, r7);
        Vector512<float> t8 = Avx512F.UnpackLow(r8, r9), t9 = Avx512F.UnpackHigh(r8, r9), t10 = Avx512F.UnpackLow(r10, r11), t11 = Avx512F.UnpackHigh(r10, r11);
        Vector512<float> t12 = Avx512F.UnpackLow(r12, r13), t13 = Avx512F.UnpackHigh(r12, r13), t14 = Avx512F.UnpackLow(r14, r15), t15 = Avx512F.UnpackHigh(r14, r15);
        r0 = Avx512F.Shuffle(t0, t2, 0x44); r1 = Avx512F.Shuffle(t0, t2, 0xEE); r2 = Avx512F.Shuffle(t1, t3, 0x44); r3 = Avx512F.Shuffle(t1, t3, 0xEE);
        r4 = Avx512F.Shuffle(t4, t6, 0x44); r5 = Avx512F.Shuffle(t4, t6, 0xEE); r6 = Avx512F.Shuffle(t5, t7, 0x44); r7 = Avx512F.Shuffle(t5, t7, 0xEE);
        r8 = Avx512F.Shuffle(t8, t10, 0x44); r9 = Avx512F.Shuffle(t8, t10, 0xEE); r10 = Avx512F.Shuffle(t9, t11, 0x44); r11 = Avx512F.Shuffle(t9, t11, 0xEE);
        r12 = Avx512F.Shuffle(t12, t14, 0x44); r13 = Avx512F.Shuffle(t12, t14, 0xEE); r14 = Avx512F.Shuffle(t13, t15, 0x44); r15 = Avx512F.Shuffle(t13, t15, 0xEE);
        // Then move the 4×4 blocks between lanes.
        t0 = Avx512F.Shuffle4x128(r0, r4, 0x88); t1 = Avx512F.Shuffle4x128(r1, r5, 0x88); t2 = Avx512F.Shuffle4x128(r2, r6, 0x88); t3 = Avx512F.Shuffle4x128(r3, r7, 0x88);
        t4 = Avx512F.Shuffle4x128(r0, r4, 0xDD); t5 = Avx512F.Shuffle4x128(r1, r5, 0xDD); t6 = Avx512F.Shuffle4x128(r2, r6, 0xDD); t7 = Avx512F.Shuffle4x128(r3, r7, 0xDD);
        t8 = Avx512F.Shuffle4x128(r8, r12, 0x88); t9 = Avx512F.Shuffle4x128(r9, r13, 0x88); t10 = Avx512F.Shuffle4x128(r10, r14, 0x88); t11 = Avx512F.Shuffle4x128(r11, r15, 0x88);
        t12 = Avx512F.Shuffle4x128(r8, r12, 0xDD); t13 = Avx512F.Shuffle4x128(r9, r13, 0xDD); t14 = Avx512F.Shuffle4x128(r10, r14, 0xDD); t15 = Avx512F.Shuffle4x128(r11, r15, 0xDD);
        Avx512F.Store(dst, Avx512F.Shuffle4x128(t0, t8, 0x88)); Avx512F.Store(dst + dstStride, Avx512F.Shuffle4x128(t1, t9, 0x88));
        Avx512F.Store(dst + 2 * dstStride, Avx512F.Shuffle4x128(t2, t10, 0x88)); Avx512F.Store(dst + 3 * dstStride, Avx512F.Shuffle4x128(t3, t11, 0x88));
        Avx512F.Store(dst + 4 * dstStride, Avx512F.Shuffle4x128(t4, t12, 0x88)); Avx512F.Store(dst + 5 * dstStride, Avx512F.Shuffle4x128(t5, t13, 0x88));
        Avx512F.Store(dst + 6 * dstStride, Avx512F.Shuffle4x128(t6, t14, 0x88)); Avx512F.Store(dst + 7 * dstStride, Avx512F.Shuffle4x128(t7, t15, 0x88));
        Avx512F.Store(dst + 8 * dstStride, Avx512F.Shuffle4x128(t0, t8, 0xDD)); Avx512F.Store(dst + 9 * dstStride, Avx512F.Shuffle4x128(t1, t9, 0xDD));
        Avx512F.Store(dst + 10 * dstStride, Avx512F.Shuffle4x128(t2, t10, 0xDD)); Avx512F.Store(dst + 11 * dstStride, Avx512F.Shuffle4x128(t3, t11, 0xDD));
        Avx512F.Store(dst + 12 * dstStride, Avx512F.Shuffle4x128(t4, t12, 0xDD)); Avx512F.Store(dst + 13 * dstStride, Avx512F.Shuffle4x128(t5, t13, 0xDD));
        Avx512F.Store(dst + 14 * dstStride, Avx512F.Shuffle4x128(t6, t14, 0xDD)); Avx512F.Store(dst + 15 * dstStride, Avx512F.Shuffle4x128(t7, t15, 0xDD));
    }

    /// <summary>C[8, 2 vectors] = Σ_k a[k, i]·x[off[k] + j]: eight packed rows against runs of the padded image.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile<T>(int depth, T* a, T* x, int* off, T* c, int ldc) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int w = Vector512<T>.Count;
        Vector512<T> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default, c30 = default, c31 = default;
        Vector512<T> c40 = default, c41 = default, c50 = default, c51 = default, c60 = default, c61 = default, c70 = default, c71 = default;
        for (int k = 0; k < depth; k++)
        {
            T* b = x + off[k];
            Vector512<T> b0 = Vector512.Load(b), b1 = Vector512.Load(b + w);
            c00 = Gemm.Fma(Vector512.Create(a[0]), b0, c00); c01 = Gemm.Fma(Vector512.Create(a[0]), b1, c01);
            c10 = Gemm.Fma(Vector512.Create(a[1]), b0, c10); c11 = Gemm.Fma(Vector512.Create(a[1]), b1, c11);
            c20 = Gemm.Fma(Vector512.Create(a[2]), b0, c20); c21 = Gemm.Fma(Vector512.Create(a[2]), b1, c21);
            c30 = Gemm.Fma(Vector512.Create(a[3]), b0, c30); c31 = Gemm.Fma(Vector512.Create(a[3]), b1, c31);
            c40 = Gemm.Fma(Vector512.Create(a[4]), b0, c40); c41 = Gemm.Fma(Vector512.Create(a[4]), b1, c41);
            c50 = Gemm.Fma(Vector512.Create(a[5]), b0, c50); c51 = Gemm.Fma(Vector512.Create(a[5]), b1, c51);
            c60 = Gemm.Fma(Vector512.Create(a[6]), b0, c60); c61 = Gemm.Fma(Vector512.Create(a[6]), b1, c61);
            c70 = Gemm.Fma(Vector512.Create(a[7]), b0, c70); c71 = Gemm.Fma(Vector512.Create(a[7]), b1, c71);
            a += MR;
        }
        c00.Store(c); c01.Store(c + w); c += ldc; c10.Store(c); c11.Store(c + w); c += ldc;
        c20.Store(c); c21.Store(c + w); c += ldc; c30.Store(c); c31.Store(c + w); c += ldc;
        c40.Store(c); c41.Store(c + w); c += ldc; c50.Store(c); c51.Store(c + w); c += ldc;
        c60.Store(c); c61.Store(c + w); c += ldc; c70.Store(c); c71.Store(c + w);
    }

    /// <summary>The one-vector-wide <see cref="Tile{T}"/>, for a last tile that one vector covers.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void HalfTile<T>(int depth, T* a, T* x, int* off, T* c, int ldc) where T : unmanaged, IFloatingPointIeee754<T>
    {
        Vector512<T> c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default, c6 = default, c7 = default;
        for (int k = 0; k < depth; k++)
        {
            Vector512<T> b0 = Vector512.Load(x + off[k]);
            c0 = Gemm.Fma(Vector512.Create(a[0]), b0, c0); c1 = Gemm.Fma(Vector512.Create(a[1]), b0, c1);
            c2 = Gemm.Fma(Vector512.Create(a[2]), b0, c2); c3 = Gemm.Fma(Vector512.Create(a[3]), b0, c3);
            c4 = Gemm.Fma(Vector512.Create(a[4]), b0, c4); c5 = Gemm.Fma(Vector512.Create(a[5]), b0, c5);
            c6 = Gemm.Fma(Vector512.Create(a[6]), b0, c6); c7 = Gemm.Fma(Vector512.Create(a[7]), b0, c7);
            a += MR;
        }
        c0.Store(c); c += ldc; c1.Store(c); c += ldc; c2.Store(c); c += ldc; c3.Store(c); c += ldc;
        c4.Store(c); c += ldc; c5.Store(c); c += ldc; c6.Store(c); c += ldc; c7.Store(c);
    }

    /// <summary>C[8, 2 vectors] (+)= Σ_p x[off_i + p]·gt[p, j]: eight im2col rows broadcast from the padded image.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void WeightTile2<T>(int positions, T* x, int* off, T* gt, int ldg, T* c, int ldc, bool acc) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int w = Vector512<T>.Count;
        T* x0 = x + off[0], x1 = x + off[1], x2 = x + off[2], x3 = x + off[3], x4 = x + off[4], x5 = x + off[5], x6 = x + off[6], x7 = x + off[7];
        Vector512<T> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default, c30 = default, c31 = default;
        Vector512<T> c40 = default, c41 = default, c50 = default, c51 = default, c60 = default, c61 = default, c70 = default, c71 = default;
        for (int p = 0; p < positions; p++, gt += ldg)
        {
            Vector512<T> b0 = Vector512.Load(gt), b1 = Vector512.Load(gt + w);
            c00 = Gemm.Fma(Vector512.Create(x0[p]), b0, c00); c01 = Gemm.Fma(Vector512.Create(x0[p]), b1, c01);
            c10 = Gemm.Fma(Vector512.Create(x1[p]), b0, c10); c11 = Gemm.Fma(Vector512.Create(x1[p]), b1, c11);
            c20 = Gemm.Fma(Vector512.Create(x2[p]), b0, c20); c21 = Gemm.Fma(Vector512.Create(x2[p]), b1, c21);
            c30 = Gemm.Fma(Vector512.Create(x3[p]), b0, c30); c31 = Gemm.Fma(Vector512.Create(x3[p]), b1, c31);
            c40 = Gemm.Fma(Vector512.Create(x4[p]), b0, c40); c41 = Gemm.Fma(Vector512.Create(x4[p]), b1, c41);
            c50 = Gemm.Fma(Vector512.Create(x5[p]), b0, c50); c51 = Gemm.Fma(Vector512.Create(x5[p]), b1, c51);
            c60 = Gemm.Fma(Vector512.Create(x6[p]), b0, c60); c61 = Gemm.Fma(Vector512.Create(x6[p]), b1, c61);
            c70 = Gemm.Fma(Vector512.Create(x7[p]), b0, c70); c71 = Gemm.Fma(Vector512.Create(x7[p]), b1, c71);
        }
        Gemm.Store512(c, 0, ldc, w, acc, c00, c01); Gemm.Store512(c, 1, ldc, w, acc, c10, c11);
        Gemm.Store512(c, 2, ldc, w, acc, c20, c21); Gemm.Store512(c, 3, ldc, w, acc, c30, c31);
        Gemm.Store512(c, 4, ldc, w, acc, c40, c41); Gemm.Store512(c, 5, ldc, w, acc, c50, c51);
        Gemm.Store512(c, 6, ldc, w, acc, c60, c61); Gemm.Store512(c, 7, ldc, w, acc, c70, c71);
    }

    /// <summary>The one-vector-wide <see cref="WeightTile2{T}"/> (16 output channels in float32, a last odd vector).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void WeightTile1<T>(int positions, T* x, int* off, T* gt, int ldg, T* c, int ldc, bool acc) where T : unmanaged, IFloatingPointIeee754<T>
    {
        T* x0 = x + off[0], x1 = x + off[1], x2 = x + off[2], x3 = x + off[3], x4 = x + off[4], x5 = x + off[5], x6 = x + off[6], x7 = x + off[7];
        Vector512<T> c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default, c6 = default, c7 = default;
        for (int p = 0; p < positions; p++, gt += ldg)
        {
            Vector512<T> b0 = Vector512.Load(gt);
            c0 = Gemm.Fma(Vector512.Create(x0[p]), b0, c0); c1 = Gemm.Fma(Vector512.Create(x1[p]), b0, c1);
            c2 = Gemm.Fma(Vector512.Create(x2[p]), b0, c2); c3 = Gemm.Fma(Vector512.Create(x3[p]), b0, c3);
            c4 = Gemm.Fma(Vector512.Create(x4[p]), b0, c4); c5 = Gemm.Fma(Vector512.Create(x5[p]), b0, c5);
            c6 = Gemm.Fma(Vector512.Create(x6[p]), b0, c6); c7 = Gemm.Fma(Vector512.Create(x7[p]), b0, c7);
        }
        ReadOnlySpan<Vector512<T>> rows = [c0, c1, c2, c3, c4, c5, c6, c7];
        for (int i = 0; i < MR; i++, c += ldc) (acc ? rows[i] + Vector512.Load(c) : rows[i]).Store(c);
    }
}
