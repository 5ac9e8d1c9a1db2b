using System.Buffers;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Curvature.Kernels.Cpu;

/// <summary>
/// General matrix multiply C = op(A)·op(B) (or C += op(A)·op(B)) for float32 and float64, after the BLIS
/// design (Van Zee and van de Geijn 2015): B is packed into KC×NR column panels, A into MR×KC row panels,
/// and an MR×NR register-blocked FMA micro-kernel (Vector512 where the CPU has AVX-512, else Vector256)
/// sweeps them. Row blocks of C run in parallel; each element of C is summed over k in the same order
/// whatever the thread count, so results are bitwise reproducible.
/// </summary>
public static unsafe class Gemm
{
    private const int MR = 8;
    // Depth blocks of up to 512: each block is one load and store of C, so a deeper block halves C's traffic at
    // k = 2048 (with the C prefetch, `Bench gemm --quick`, one thread: 1024 from 0.76–0.82 to 0.90–0.96 of OpenBLAS's
    // Cooperlake kernel, 2048 from 0.72–0.84 to 0.84–0.88; perf/README).
    // The B micro-panel (512×32 floats, 64 KB) then streams from L2, which the hardware prefetcher keeps up with.
    private const int KC = 512;
    private const int NC = 3072;
    private const int MCMax = 128;
    private const long SmallWork = 32 * 32 * 32;

    /// <summary>
    /// C[m×n] = op(A)[m×k]·op(B)[k×n], or C += … when <paramref name="accumulate"/> is set. op(X) is X or
    /// Xᵀ; leading dimensions are the row strides of the stored (untransposed) matrices.
    /// </summary>
    public static void Multiply<T>(bool transA, bool transB, int m, int n, int k,
        ReadOnlySpan<T> a, int lda, ReadOnlySpan<T> b, int ldb, Span<T> c, int ldc, bool accumulate)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (m == 0 || n == 0) return;
        if (k == 0)
        {
            if (!accumulate) for (int i = 0; i < m; i++) c.Slice(i * ldc, n).Clear();
            return;
        }
        fixed (T* pa = a) fixed (T* pb = b) fixed (T* pc = c)
        {
            if ((long)m * n * k <= SmallWork) Naive(transA, transB, m, n, k, pa, lda, pb, ldb, pc, ldc, accumulate);
            else Blocked(transA, transB, m, n, k, pa, lda, pb, ldb, pc, ldc, accumulate, Parallelism.MaxThreads);
        }
    }

    /// <summary>
    /// A batch of independent products with fixed strides between consecutive matrices. Small products run
    /// one per thread; large ones run one after another, each parallel inside.
    /// </summary>
    public static void MultiplyBatched<T>(int batch, bool transA, bool transB, int m, int n, int k,
        ReadOnlySpan<T> a, int lda, long strideA, ReadOnlySpan<T> b, int ldb, long strideB,
        Span<T> c, int ldc, long strideC, bool accumulate)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (batch == 1) { Multiply(transA, transB, m, n, k, a, lda, b, ldb, c, ldc, accumulate); return; }
        fixed (T* pa0 = a) fixed (T* pb0 = b) fixed (T* pc0 = c)
        {
            T* pa = pa0, pb = pb0, pc = pc0;
            long work = (long)m * n * k;
            if (work <= 256L * 256 * 256 && batch >= 2)
            {
                Parallelism.For(batch, i =>
                {
                    if (work <= SmallWork) Naive(transA, transB, m, n, k, pa + i * strideA, lda, pb + i * strideB, ldb, pc + i * strideC, ldc, accumulate);
                    else Blocked(transA, transB, m, n, k, pa + i * strideA, lda, pb + i * strideB, ldb, pc + i * strideC, ldc, accumulate, 1);
                });
            }
            else
            {
                for (int i = 0; i < batch; i++)
                    Blocked(transA, transB, m, n, k, pa + i * strideA, lda, pb + i * strideB, ldb, pc + i * strideC, ldc, accumulate, Parallelism.MaxThreads);
            }
        }
    }

    private static void Naive<T>(bool transA, bool transB, int m, int n, int k,
        T* a, int lda, T* b, int ldb, T* c, int ldc, bool accumulate) where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                T s = T.Zero;
                for (int p = 0; p < k; p++)
                {
                    T av = transA ? a[(long)p * lda + i] : a[(long)i * lda + p];
                    T bv = transB ? b[(long)j * ldb + p] : b[(long)p * ldb + j];
                    s = T.FusedMultiplyAdd(av, bv, s);
                }
                c[(long)i * ldc + j] = accumulate ? c[(long)i * ldc + j] + s : s;
            }
    }

    private static int NR<T>() where T : unmanaged =>
        Vector512.IsHardwareAccelerated ? 2 * Vector512<T>.Count
        : Vector256.IsHardwareAccelerated ? 2 * Vector256<T>.Count
        : 2 * Vector128<T>.Count;

    /// <summary>
    /// Splits C into one block per thread along its larger dimension and runs the sequential loop nest on
    /// each with private packing buffers: no barrier inside the product. Every element of C still sees the
    /// same KC blocking and micro-kernel order, so the split never changes a bit.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Blocked<T>(bool transA, bool transB, int m, int n, int k,
        T* a, int lda, T* b, int ldb, T* c, int ldc, bool accumulate, int threads)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int nr = NR<T>();
        long work = (long)m * n * k;
        int parts = (int)Math.Min(threads, Math.Max(1, work / (64L * 64 * 64)));
        // Splitting rows makes every thread pack all of op(B) (k×n); splitting columns, all of op(A) (m×k).
        bool splitRows = n <= m;
        int units = splitRows ? (m + MR - 1) / MR : (n + nr - 1) / nr;
        parts = Math.Min(parts, units);
        if (parts <= 1)
        {
            Sequential(transA, transB, m, n, k, a, lda, b, ldb, c, ldc, accumulate, nr);
            return;
        }
        Parallelism.For(parts, t =>
        {
            int u0 = (int)((long)units * t / parts), u1 = (int)((long)units * (t + 1) / parts);
            if (splitRows)
            {
                int i0 = u0 * MR, i1 = Math.Min(m, u1 * MR);
                T* ap = transA ? a + i0 : a + (long)i0 * lda;
                Sequential(transA, transB, i1 - i0, n, k, ap, lda, b, ldb, c + (long)i0 * ldc, ldc, accumulate, nr);
            }
            else
            {
                int j0 = u0 * nr, j1 = Math.Min(n, u1 * nr);
                T* bp = transB ? b + (long)j0 * ldb : b + j0;
                Sequential(transA, transB, m, j1 - j0, k, a, lda, bp, ldb, c + j0, ldc, accumulate, nr);
            }
        });
    }

    /// <summary>The BLIS loop nest on one thread: NC columns, KC depth, MC rows, then the macro-kernel.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Sequential<T>(bool transA, bool transB, int m, int n, int k,
        T* a, int lda, T* b, int ldb, T* c, int ldc, bool accumulate, int nr)
        where T : unmanaged, IFloatingPointIeee754<T> =>
        Sequential(transA, m, n, k, a, lda, new DenseB<T>(transB, b, ldb), c, ldc, accumulate, nr);

    /// <summary>
    /// A source of op(B) panels: packs rows [p0, p0+kc) × columns [j0, j0+cols) of op(B) as kc rows of
    /// <c>width</c> values (zero-padded past cols). Dense matrices are one; a convolution's implicit im2col
    /// columns are another, so the columns are never materialized.
    /// </summary>
    internal interface IPanelSource<T> where T : unmanaged
    {
        /// <summary>Packs one panel.</summary>
        void Pack(int p0, int kc, int j0, int cols, int width, T* dst);
    }

    /// <summary>A stored matrix B (or Bᵀ) with leading dimension ldb.</summary>
    private readonly struct DenseB<T>(bool transB, T* b, int ldb) : IPanelSource<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        public void Pack(int p0, int kc, int j0, int cols, int width, T* dst) => PackB(transB, b, ldb, p0, kc, j0, cols, width, dst);
    }

    /// <summary>
    /// C[m×n] (+)= op(A)·op(B) on the calling thread, op(B) supplied panel by panel by <paramref name="b"/>.
    /// The same loop nest, blocking and micro-kernel as the dense product, so the sums run in the same order.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Sequential<T, TB>(bool transA, int m, int n, int k, T* a, int lda, TB b, T* c, int ldc, bool accumulate, int nr, T* prepackedA = null)
        where T : unmanaged, IFloatingPointIeee754<T> where TB : struct, IPanelSource<T> =>
        Sequential(m, n, k, new DenseA<T>(transA, a, lda), b, c, ldc, accumulate, nr, prepackedA);

    /// <summary>A source of op(A) panels: packs rows [i0, i0+rows) × depth [p0, p0+kc) as kc columns of MR values, zero-padded.</summary>
    internal interface IRowPanelSource<T> where T : unmanaged
    {
        /// <summary>Packs one MR-row panel.</summary>
        void Pack(int i0, int rows, int p0, int kc, T* dst);
    }

    /// <summary>A stored matrix A (or Aᵀ) with leading dimension lda.</summary>
    private readonly struct DenseA<T>(bool transA, T* a, int lda) : IRowPanelSource<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        public void Pack(int i0, int rows, int p0, int kc, T* dst) => PackA(transA, a, lda, i0, rows, p0, kc, dst);
    }

    /// <summary>The loop nest with both operands supplied panel by panel (or A prepacked).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Sequential<T, TA, TB>(int m, int n, int k, TA a, TB b, T* c, int ldc, bool accumulate, int nr, T* prepackedA = null)
        where T : unmanaged, IFloatingPointIeee754<T> where TA : struct, IRowPanelSource<T> where TB : struct, IPanelSource<T>
    {
        if (m == 0 || n == 0) return;
        if (k == 0)
        {
            if (!accumulate) for (int i = 0; i < m; i++) new Span<T>(c + (long)i * ldc, n).Clear();
            return;
        }
        int ncMax = Math.Min(NC, RoundUp(n, nr));
        // Equal depth blocks (1200 → 3 × 400, not 2 × 512 + 176): a thin last block would cost a whole pass over C.
        // The split depends on k alone, so every element still sums in the same order on any thread count.
        int kBlocks = (k + KC - 1) / KC;
        int kcStep = (k + kBlocks - 1) / kBlocks;
        int kcMax = kcStep;
        int mcMax = Math.Min(MCMax, RoundUp(m, MR));
        T[] packedB = ArrayPool<T>.Shared.Rent(kcMax * ncMax);
        T[] packedA = ArrayPool<T>.Shared.Rent(kcMax * mcMax);
        try
        {
            fixed (T* bp = packedB) fixed (T* ap = packedA)
            {
                for (int jc = 0; jc < n; jc += NC)
                {
                    int nc = Math.Min(NC, n - jc);
                    for (int pc = 0; pc < k; pc += kcStep)
                    {
                        int kc = Math.Min(kcStep, k - pc);
                        bool acc = accumulate || pc > 0;
                        for (int jp = 0; jp * nr < nc; jp++)
                        {
                            int cols = Math.Min(nr, nc - jp * nr);
                            b.Pack(pc, kc, jc + jp * nr, cols, PanelWidth(cols, nr), bp + (long)jp * nr * kc);
                        }
                        for (int ic = 0; ic < m; ic += MCMax)
                        {
                            int mc = Math.Min(MCMax, m - ic);
                            T* block = ap;
                            if (prepackedA != null) block = prepackedA + PrepackedOffset(m, kcStep, pc, ic, kc);
                            else
                                for (int ip = 0; ip < mc; ip += MR)
                                    a.Pack(ic + ip, Math.Min(MR, mc - ip), pc, kc, ap + (long)ip * kc);
                            Macro(mc, nc, kc, block, bp, c + (long)ic * ldc + jc, ldc, acc, nr);
                        }
                    }
                }
            }
        }
        finally
        {
            ArrayPool<T>.Shared.Return(packedA);
            ArrayPool<T>.Shared.Return(packedB);
        }
    }

    private static long PrepackedOffset(int m, int kcStep, int pc, int ic, int kc) => (long)(pc / kcStep) * RoundUp(m, MR) * kcStep + (long)ic * kc;

    /// <summary>
    /// op(A) [m×k] packed once in the layout <see cref="Sequential{T, TB}"/> reads, for an operand shared by many
    /// products (a convolution's weight across the images of a batch). Rent from the pool; return when done.
    /// </summary>
    internal static T[] PrepackA<T>(bool transA, T* a, int lda, int m, int k) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int kBlocks = (k + KC - 1) / KC;
        int kcStep = (k + kBlocks - 1) / kBlocks;
        var packed = ArrayPool<T>.Shared.Rent((int)((long)kBlocks * RoundUp(m, MR) * kcStep));
        fixed (T* dst = packed)
            for (int pc = 0; pc < k; pc += kcStep)
            {
                int kc = Math.Min(kcStep, k - pc);
                for (int ic = 0; ic < m; ic += MCMax)
                {
                    int mc = Math.Min(MCMax, m - ic);
                    T* block = dst + PrepackedOffset(m, kcStep, pc, ic, kc);
                    for (int ip = 0; ip < mc; ip += MR) PackA(transA, a, lda, ic + ip, Math.Min(MR, mc - ip), pc, kc, block + (long)ip * kc);
                }
            }
        return packed;
    }

    /// <summary>C (+)= op(A)·op(B) with op(A) prepacked by <see cref="PrepackA{T}"/> and a dense B, on the calling thread.</summary>
    internal static void MultiplyPrepacked<T>(T* packedA, int m, int n, int k, bool transB, T* b, int ldb, T* c, int ldc, bool accumulate)
        where T : unmanaged, IFloatingPointIeee754<T> =>
        Sequential(false, m, n, k, null, 0, new DenseB<T>(transB, b, ldb), c, ldc, accumulate, NR<T>(), packedA);

    /// <summary>C (+)= op(A)·op(B) with op(A) from a panel source and a dense B, on the calling thread.</summary>
    internal static void MultiplyWithRows<T, TA>(TA a, int m, int n, int k, bool transB, T* b, int ldb, T* c, int ldc, bool accumulate)
        where T : unmanaged, IFloatingPointIeee754<T> where TA : struct, IRowPanelSource<T> =>
        Sequential(m, n, k, a, new DenseB<T>(transB, b, ldb), c, ldc, accumulate, NR<T>());


    /// <summary>The register-panel width of op(B) for T (two vectors).</summary>
    internal static int PanelColumns<T>() where T : unmanaged => NR<T>();

    internal static int RoundUp(int x, int multiple) => (x + multiple - 1) / multiple * multiple;

    /// <summary>Packs rows [i0, i0+rows) × columns [p0, p0+kc) of op(A) as kc columns of MR values, zero-padded.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PackA<T>(bool transA, T* a, int lda, int i0, int rows, int p0, int kc, T* dst)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (!transA)
        {
            int done = 0;
            if (typeof(T) == typeof(float) && rows == MR && Avx.IsSupported)
                done = PackRowsTransposed((float*)a + (long)i0 * lda + p0, lda, kc, (float*)dst, MR);
            for (int i = 0; i < rows; i++)
            {
                T* src = a + (long)(i0 + i) * lda + p0;
                for (int p = done; p < kc; p++) dst[p * MR + i] = src[p];
            }
        }
        else if (typeof(T) == typeof(float) && rows == MR && Vector256.IsHardwareAccelerated)
        {
            for (int p = 0; p < kc; p++) Vector256.Load((float*)a + (long)(p0 + p) * lda + i0).Store((float*)dst + p * MR);
        }
        else
        {
            for (int p = 0; p < kc; p++)
            {
                T* src = a + (long)(p0 + p) * lda + i0;
                for (int i = 0; i < rows; i++) dst[p * MR + i] = src[i];
            }
        }
        if (rows < MR)
            for (int p = 0; p < kc; p++)
                for (int i = rows; i < MR; i++) dst[p * MR + i] = T.Zero;
    }

    /// <summary>
    /// Writes 8 rows (src, row stride lda) over [0, kc) in blocks of 8 as kc rows of 8 values, dstStride apart: an
    /// 8×8 transpose in registers per block (unpack, shuffle, lane permute), where a scalar loop wrote one float per
    /// strided store. A's panels (8 rows of A, stride MR) and transposed B's (8 stored rows of B, stride nr) both pack
    /// this way. Returns the depth done (a multiple of 8); the caller packs the rest.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int PackRowsTransposed(float* src, int lda, int kc, float* dst, int dstStride)
    {
        int p = 0;
        for (; p + 8 <= kc; p += 8)
        {
            float* s = src + p;
            Vector256<float> r0 = Avx.LoadVector256(s), r1 = Avx.LoadVector256(s + lda), r2 = Avx.LoadVector256(s + 2L * lda), r3 = Avx.LoadVector256(s + 3L * lda);
            Vector256<float> r4 = Avx.LoadVector256(s + 4L * lda), r5 = Avx.LoadVector256(s + 5L * lda), r6 = Avx.LoadVector256(s + 6L * lda), r7 = Avx.LoadVector256(s + 7L * lda);
            Vector256<float> t0 = Avx.UnpackLow(r0, r1), t1 = Avx.UnpackHigh(r0, r1), t2 = Avx.UnpackLow(r2, r3), t3 = Avx.UnpackHigh(r2, r3);
            Vector256<float> t4 = Avx.UnpackLow(r4, r5), t5 = Avx.UnpackHigh(r4, r5), t6 = Avx.UnpackLow(r6, r7), t7 = Avx.UnpackHigh(r6, r7);
            Vector256<float> u0 = Avx.Shuffle(t0, t2, 0x44), u1 = Avx.Shuffle(t0, t2, 0xEE), u2 = Avx.Shuffle(t1, t3, 0x44), u3 = Avx.Shuffle(t1, t3, 0xEE);
            Vector256<float> u4 = Avx.Shuffle(t4, t6, 0x44), u5 = Avx.Shuffle(t4, t6, 0xEE), u6 = Avx.Shuffle(t5, t7, 0x44), u7 = Avx.Shuffle(t5, t7, 0xEE);
            float* d = dst + (long)p * dstStride;
            int s1 = dstStride;
            Avx.Store(d, Avx.Permute2x128(u0, u4, 0x20)); Avx.Store(d + s1, Avx.Permute2x128(u1, u5, 0x20));
            Avx.Store(d + 2 * s1, Avx.Permute2x128(u2, u6, 0x20)); Avx.Store(d + 3 * s1, Avx.Permute2x128(u3, u7, 0x20));
            Avx.Store(d + 4 * s1, Avx.Permute2x128(u0, u4, 0x31)); Avx.Store(d + 5 * s1, Avx.Permute2x128(u1, u5, 0x31));
            Avx.Store(d + 6 * s1, Avx.Permute2x128(u2, u6, 0x31)); Avx.Store(d + 7 * s1, Avx.Permute2x128(u3, u7, 0x31));
        }
        return p;
    }

    /// <summary>Packs rows [p0, p0+kc) × columns [j0, j0+cols) of op(B) as kc rows of nr values, zero-padded.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PackB<T>(bool transB, T* b, int ldb, int p0, int kc, int j0, int cols, int nr, T* dst)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (!transB)
        {
            for (int p = 0; p < kc; p++)
            {
                new ReadOnlySpan<T>(b + (long)(p0 + p) * ldb + j0, cols).CopyTo(new Span<T>(dst + p * nr, cols));
                for (int j = cols; j < nr; j++) dst[p * nr + j] = T.Zero;
            }
        }
        else
        {
            // Whole groups of 8 stored rows by register transposes, the rest (and any depth tail) one by one.
            int grouped = typeof(T) == typeof(float) && Avx.IsSupported ? cols / 8 * 8 : 0;
            for (int j = 0; j < grouped; j += 8)
            {
                int done = PackRowsTransposed((float*)b + (long)(j0 + j) * ldb + p0, ldb, kc, (float*)dst + j, nr);
                for (int jj = j; jj < j + 8; jj++)
                {
                    T* src = b + (long)(j0 + jj) * ldb + p0;
                    for (int p = done; p < kc; p++) dst[p * nr + jj] = src[p];
                }
            }
            for (int j = grouped; j < cols; j++)
            {
                T* src = b + (long)(j0 + j) * ldb + p0;
                for (int p = 0; p < kc; p++) dst[p * nr + j] = src[p];
            }
            if (cols < nr)
                for (int p = 0; p < kc; p++)
                    for (int j = cols; j < nr; j++) dst[p * nr + j] = T.Zero;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Macro<T>(int mc, int nc, int kc, T* aPacked, T* bPacked, T* c, int ldc, bool acc, int nr)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T* tile = stackalloc T[MR * 64];
        for (int jr = 0; jr < nc; jr += nr)
        {
            int cols = Math.Min(nr, nc - jr);
            int width = PanelWidth(cols, nr);
            bool half = width < nr;
            T* bp = bPacked + (long)jr * kc;
            for (int ir = 0; ir < mc; ir += MR)
            {
                int rows = Math.Min(MR, mc - ir);
                T* ap = aPacked + (long)ir * kc;
                T* cp = c + (long)ir * ldc + jr;
                if (rows == MR && cols == width)
                {
                    MicroKernel(kc, ap, bp, cp, ldc, acc, half);
                }
                else
                {
                    MicroKernel(kc, ap, bp, tile, width, false, half);
                    for (int i = 0; i < rows; i++)
                        for (int j = 0; j < cols; j++)
                            cp[(long)i * ldc + j] = acc ? cp[(long)i * ldc + j] + tile[i * width + j] : tile[i * width + j];
                }
            }
        }
    }

    /// <summary>
    /// Packed width of a column panel: a last panel of at most half the width (n = 200 leaves 8 columns) is
    /// packed and computed one vector wide, so it wastes 8 of 16 lanes instead of 24 of 32.
    /// </summary>
    private static int PanelWidth(int cols, int nr) =>
        cols <= nr / 2 && (Vector512.IsHardwareAccelerated || Vector256.IsHardwareAccelerated) ? nr / 2 : nr;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void MicroKernel<T>(int kc, T* a, T* b, T* c, int ldc, bool acc, bool half)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (half)
        {
            if (Vector512.IsHardwareAccelerated) HalfKernel512(kc, a, b, c, ldc, acc);
            else HalfKernel256(kc, a, b, c, ldc, acc);
        }
        else if (Vector512.IsHardwareAccelerated) Kernel512(kc, a, b, c, ldc, acc);
        else if (Vector256.IsHardwareAccelerated) Kernel256(kc, a, b, c, ldc, acc);
        else Kernel128(kc, a, b, c, ldc, acc);
    }


    // Vector512/256.FusedMultiplyAdd exist only for float and double; the type test folds away per T.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<T> Fma<T>(Vector512<T> a, Vector512<T> b, Vector512<T> c) where T : unmanaged
    {
        if (typeof(T) == typeof(float)) return Vector512.FusedMultiplyAdd(a.As<T, float>(), b.As<T, float>(), c.As<T, float>()).As<float, T>();
        return Vector512.FusedMultiplyAdd(a.As<T, double>(), b.As<T, double>(), c.As<T, double>()).As<double, T>();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<T> Fma<T>(Vector256<T> a, Vector256<T> b, Vector256<T> c) where T : unmanaged
    {
        if (typeof(T) == typeof(float)) return Vector256.FusedMultiplyAdd(a.As<T, float>(), b.As<T, float>(), c.As<T, float>()).As<float, T>();
        return Vector256.FusedMultiplyAdd(a.As<T, double>(), b.As<T, double>(), c.As<T, double>()).As<double, T>();
    }

    /// <summary>
    /// Asks for the C micro-tile's lines before the k loop, so their misses (rows ldc apart, which the hardware
    /// prefetcher does not follow) overlap the FMAs instead of stalling the stores at the end.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchTile<T>(T* c, int ldc, int lineElements, bool twoLines) where T : unmanaged
    {
        if (!Sse.IsSupported) return;
        for (int i = 0; i < MR; i++)
        {
            Sse.Prefetch0(c + (long)i * ldc);
            if (twoLines) Sse.Prefetch0(c + (long)i * ldc + lineElements);
        }
    }

    // The three kernels are one algorithm at three vector widths: 8 rows × 2 vectors of accumulators,
    // one broadcast of A and two loads of B per k, fused multiply-adds.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel512<T>(int kc, T* a, T* b, T* c, int ldc, bool acc) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int w = Vector512<T>.Count;
        Vector512<T> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default, c30 = default, c31 = default;
        Vector512<T> c40 = default, c41 = default, c50 = default, c51 = default, c60 = default, c61 = default, c70 = default, c71 = default;
        PrefetchTile(c, ldc, w, true);
        for (int p = 0; p < kc; p++)
        {
            Vector512<T> b0 = Vector512.Load(b), b1 = Vector512.Load(b + w);
            c00 = Fma(Vector512.Create(a[0]), b0, c00); c01 = Fma(Vector512.Create(a[0]), b1, c01);
            c10 = Fma(Vector512.Create(a[1]), b0, c10); c11 = Fma(Vector512.Create(a[1]), b1, c11);
            c20 = Fma(Vector512.Create(a[2]), b0, c20); c21 = Fma(Vector512.Create(a[2]), b1, c21);
            c30 = Fma(Vector512.Create(a[3]), b0, c30); c31 = Fma(Vector512.Create(a[3]), b1, c31);
            c40 = Fma(Vector512.Create(a[4]), b0, c40); c41 = Fma(Vector512.Create(a[4]), b1, c41);
            c50 = Fma(Vector512.Create(a[5]), b0, c50); c51 = Fma(Vector512.Create(a[5]), b1, c51);
            c60 = Fma(Vector512.Create(a[6]), b0, c60); c61 = Fma(Vector512.Create(a[6]), b1, c61);
            c70 = Fma(Vector512.Create(a[7]), b0, c70); c71 = Fma(Vector512.Create(a[7]), b1, c71);
            a += MR; b += 2 * w;
        }
        Store512(c, 0, ldc, w, acc, c00, c01); Store512(c, 1, ldc, w, acc, c10, c11);
        Store512(c, 2, ldc, w, acc, c20, c21); Store512(c, 3, ldc, w, acc, c30, c31);
        Store512(c, 4, ldc, w, acc, c40, c41); Store512(c, 5, ldc, w, acc, c50, c51);
        Store512(c, 6, ldc, w, acc, c60, c61); Store512(c, 7, ldc, w, acc, c70, c71);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Store512<T>(T* c, int row, int ldc, int w, bool acc, Vector512<T> v0, Vector512<T> v1) where T : unmanaged
    {
        T* p = c + (long)row * ldc;
        if (acc) { v0 += Vector512.Load(p); v1 += Vector512.Load(p + w); }
        v0.Store(p); v1.Store(p + w);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel256<T>(int kc, T* a, T* b, T* c, int ldc, bool acc) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int w = Vector256<T>.Count;
        Span<Vector256<T>> s = stackalloc Vector256<T>[2 * MR];
        Vector256<T> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default, c30 = default, c31 = default;
        Vector256<T> c40 = default, c41 = default, c50 = default, c51 = default, c60 = default, c61 = default, c70 = default, c71 = default;
        PrefetchTile(c, ldc, w, false);
        for (int p = 0; p < kc; p++)
        {
            Vector256<T> b0 = Vector256.Load(b), b1 = Vector256.Load(b + w);
            c00 = Fma(Vector256.Create(a[0]), b0, c00); c01 = Fma(Vector256.Create(a[0]), b1, c01);
            c10 = Fma(Vector256.Create(a[1]), b0, c10); c11 = Fma(Vector256.Create(a[1]), b1, c11);
            c20 = Fma(Vector256.Create(a[2]), b0, c20); c21 = Fma(Vector256.Create(a[2]), b1, c21);
            c30 = Fma(Vector256.Create(a[3]), b0, c30); c31 = Fma(Vector256.Create(a[3]), b1, c31);
            c40 = Fma(Vector256.Create(a[4]), b0, c40); c41 = Fma(Vector256.Create(a[4]), b1, c41);
            c50 = Fma(Vector256.Create(a[5]), b0, c50); c51 = Fma(Vector256.Create(a[5]), b1, c51);
            c60 = Fma(Vector256.Create(a[6]), b0, c60); c61 = Fma(Vector256.Create(a[6]), b1, c61);
            c70 = Fma(Vector256.Create(a[7]), b0, c70); c71 = Fma(Vector256.Create(a[7]), b1, c71);
            a += MR; b += 2 * w;
        }
        s[0] = c00; s[1] = c01; s[2] = c10; s[3] = c11; s[4] = c20; s[5] = c21; s[6] = c30; s[7] = c31;
        s[8] = c40; s[9] = c41; s[10] = c50; s[11] = c51; s[12] = c60; s[13] = c61; s[14] = c70; s[15] = c71;
        for (int i = 0; i < MR; i++)
        {
            T* p = c + (long)i * ldc;
            Vector256<T> v0 = s[2 * i], v1 = s[2 * i + 1];
            if (acc) { v0 += Vector256.Load(p); v1 += Vector256.Load(p + w); }
            v0.Store(p); v1.Store(p + w);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void HalfKernel512<T>(int kc, T* a, T* b, T* c, int ldc, bool acc) where T : unmanaged, IFloatingPointIeee754<T>
    {
        Vector512<T> c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default, c6 = default, c7 = default;
        PrefetchTile(c, ldc, Vector512<T>.Count, false);
        for (int p = 0; p < kc; p++)
        {
            Vector512<T> b0 = Vector512.Load(b);
            c0 = Fma(Vector512.Create(a[0]), b0, c0); c1 = Fma(Vector512.Create(a[1]), b0, c1);
            c2 = Fma(Vector512.Create(a[2]), b0, c2); c3 = Fma(Vector512.Create(a[3]), b0, c3);
            c4 = Fma(Vector512.Create(a[4]), b0, c4); c5 = Fma(Vector512.Create(a[5]), b0, c5);
            c6 = Fma(Vector512.Create(a[6]), b0, c6); c7 = Fma(Vector512.Create(a[7]), b0, c7);
            a += MR; b += Vector512<T>.Count;
        }
        ReadOnlySpan<Vector512<T>> rows = [c0, c1, c2, c3, c4, c5, c6, c7];
        for (int i = 0; i < MR; i++)
        {
            T* p = c + (long)i * ldc;
            var v = acc ? rows[i] + Vector512.Load(p) : rows[i];
            v.Store(p);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void HalfKernel256<T>(int kc, T* a, T* b, T* c, int ldc, bool acc) where T : unmanaged, IFloatingPointIeee754<T>
    {
        Vector256<T> c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default, c6 = default, c7 = default;
        for (int p = 0; p < kc; p++)
        {
            Vector256<T> b0 = Vector256.Load(b);
            c0 = Fma(Vector256.Create(a[0]), b0, c0); c1 = Fma(Vector256.Create(a[1]), b0, c1);
            c2 = Fma(Vector256.Create(a[2]), b0, c2); c3 = Fma(Vector256.Create(a[3]), b0, c3);
            c4 = Fma(Vector256.Create(a[4]), b0, c4); c5 = Fma(Vector256.Create(a[5]), b0, c5);
            c6 = Fma(Vector256.Create(a[6]), b0, c6); c7 = Fma(Vector256.Create(a[7]), b0, c7);
            a += MR; b += Vector256<T>.Count;
        }
        ReadOnlySpan<Vector256<T>> rows = [c0, c1, c2, c3, c4, c5, c6, c7];
        for (int i = 0; i < MR; i++)
        {
            T* p = c + (long)i * ldc;
            var v = acc ? rows[i] + Vector256.Load(p) : rows[i];
            v.Store(p);
        }
    }

    private static void Kernel128<T>(int kc, T* a, T* b, T* c, int ldc, bool acc) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int nr = 2 * Vector128<T>.Count;
        Span<T> sum = stackalloc T[MR * 2 * 8];
        sum.Clear();
        for (int p = 0; p < kc; p++)
            for (int i = 0; i < MR; i++)
                for (int j = 0; j < nr; j++)
                    sum[i * nr + j] = T.FusedMultiplyAdd(a[p * MR + i], b[p * nr + j], sum[i * nr + j]);
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < nr; j++)
                c[(long)i * ldc + j] = acc ? c[(long)i * ldc + j] + sum[i * nr + j] : sum[i * nr + j];
    }
}
