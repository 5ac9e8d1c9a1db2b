using System.Numerics;
using ILGPU;

namespace Curvature.Kernels.Gpu;

/// <summary>
/// A GEMM tiling. A group of TX×TY threads computes a BM×BN block of C, with BM = 4·TY·H and BN = 4·TX·H. It
/// steps through K in slices <see cref="Gemm.Depth"/> deep, held in shared memory. Each thread keeps H×H
/// blocks of 4×4 of C in registers. Its rows are ty·4 + r and, when H = 2, TY·4 + ty·4 + r; its columns
/// follow the same rule with tx and TX.
/// </summary>
/// <remarks>
/// Splitting a thread's rows into two quads TY·4 apart is what lets a warp read its A and B fragments as
/// 16-byte vectors without bank conflicts. Consecutive tx read consecutive quads of a B row, and threads of
/// one ty read the same A quad, which is a broadcast. This is the layout of the classic register-blocked
/// SGEMM (Volkov and Demmel 2008; the "2D block tiling, vectorized" kernel of S. Boehm's CUDA SGEMM notes).
/// </remarks>
public interface IGemmTile
{
    /// <summary>Threads along a row of C's block (columns of threads).</summary>
    int TX { get; }
    /// <summary>Threads along a column of C's block (rows of threads).</summary>
    int TY { get; }
    /// <summary>Quads per thread along each axis: 1 (4×4 per thread) or 2 (8×8).</summary>
    int H { get; }
}

/// <summary>128×128 blocks, 8×8 per thread, 256 threads: a GPU's large products (SGEMM at 4096).</summary>
public readonly struct GpuLargeTile : IGemmTile
{
    /// <inheritdoc/>
    public int TX => 16;
    /// <inheritdoc/>
    public int TY => 16;
    /// <inheritdoc/>
    public int H => 2;
}

/// <summary>64×64 blocks, 4×4 per thread, 256 threads: a GPU's products too small or too thin to fill it with
/// 128×128 blocks (ResNet-20's convolutions of 16-64 channels).</summary>
public readonly struct GpuSmallTile : IGemmTile
{
    /// <inheritdoc/>
    public int TX => 16;
    /// <inheritdoc/>
    public int TY => 16;
    /// <inheritdoc/>
    public int H => 1;
}

/// <summary>16×256 blocks, 4×4 per thread, 256 threads: products of at most 16 rows (a 16-channel convolution's
/// output and weight gradient), which a 128-row block would compute eight times over.</summary>
public readonly struct GpuThin16Tile : IGemmTile
{
    /// <inheritdoc/>
    public int TX => 64;
    /// <inheritdoc/>
    public int TY => 4;
    /// <inheritdoc/>
    public int H => 1;
}

/// <summary>32×128 blocks, 4×4 per thread, 256 threads: products of 17 to 32 rows (a 32-channel convolution's).</summary>
public readonly struct GpuThin32Tile : IGemmTile
{
    /// <inheritdoc/>
    public int TX => 32;
    /// <inheritdoc/>
    public int TY => 8;
    /// <inheritdoc/>
    public int H => 1;
}

/// <summary>32×32 blocks, 8×8 per thread, 16 threads: the large kernel's code on ILGPU's CPU accelerator, which
/// allows at most 16 threads per group.</summary>
public readonly struct CpuLargeTile : IGemmTile
{
    /// <inheritdoc/>
    public int TX => 4;
    /// <inheritdoc/>
    public int TY => 4;
    /// <inheritdoc/>
    public int H => 2;
}

/// <summary>16×16 blocks, 4×4 per thread, 16 threads: the small kernel's code on ILGPU's CPU accelerator.</summary>
public readonly struct CpuSmallTile : IGemmTile
{
    /// <inheritdoc/>
    public int TX => 4;
    /// <inheritdoc/>
    public int TY => 4;
    /// <inheritdoc/>
    public int H => 1;
}

/// <summary>Sizes, transposes, leading dimensions and batch strides of a batched product C = op(A)·op(B).</summary>
public struct GemmArguments
{
    /// <summary>Rows of C, columns of C, and the shared dimension.</summary>
    public int M, N, K;
    /// <summary>1 when A (B) is stored transposed.</summary>
    public int TransA, TransB;
    /// <summary>Row lengths of A, B and C as stored.</summary>
    public int Lda, Ldb, Ldc;
    /// <summary>Elements between consecutive matrices of the batch.</summary>
    public int StrideA, StrideB, StrideC;
    /// <summary>
    /// Split-K: the number of ranges K is cut into, each <see cref="SplitDepth"/> deep (the last one shorter),
    /// each computed by its own groups into its own partial product; 0 or 1 when K is not split.
    /// </summary>
    public int Splits, SplitDepth;

    /// <summary>
    /// 2 to add a second product of the same shapes and layout, C = op(A)·op(B) + op(A2)·op(B2) (a bilinear JVP's two
    /// terms), in one accumulator: the kernel runs K for the first pair, then for the second; 0 or 1 for one pair.
    /// </summary>
    public int Pairs;

    /// <summary>The number of ranges K is cut into (at least 1).</summary>
    public readonly int KRanges => Math.Max(1, Splits);

    /// <summary>The products' shared axis end to end: K, or with a second pair K rounded up to whole slices and then
    /// the second pair's K (so no slice holds both pairs).</summary>
    public readonly int TotalK => Pairs == 2 ? SecondPairStart + K : K;

    /// <summary>Where the second pair starts on <see cref="TotalK"/>: K rounded up to a whole slice.</summary>
    public readonly int SecondPairStart => (K + Gemm.Depth - 1) / Gemm.Depth * Gemm.Depth;

    /// <summary>Groups the tiling <typeparamref name="C"/> launches for <paramref name="batch"/> products.</summary>
    public readonly long Groups<C>(int batch) where C : struct, IGemmTile
    {
        var (grid, _) = Launch<C>(batch);
        return (long)grid.X * grid.Y * grid.Z;
    }

    /// <summary>The launch: one group per block of C per batch entry per range of K.</summary>
    public readonly (Index3D Grid, Index3D Group) Launch<C>(int batch) where C : struct, IGemmTile
    {
        C t = default;
        int bm = Gemm.BlockRows<C>(), bn = Gemm.BlockColumns<C>();
        return (new Index3D((N + bn - 1) / bn, (M + bm - 1) / bm, batch * KRanges), new Index3D(t.TX * t.TY, 1, 1));
    }

    /// <summary>
    /// This product with K split so that the tiling <typeparamref name="C"/> puts about two groups on each of
    /// <paramref name="multiprocessors"/>, or unchanged when it already fills the device or K is too short to
    /// cut. A weight gradient is a product of few blocks over a long K (ResNet-20's first convolutions:
    /// 16×144 from K = 131,072 at batch 128, three 64×64 blocks), which unsplit runs on three multiprocessors
    /// of 132. The partial products go to a workspace of <see cref="KRanges"/>·batch products of M×N, which
    /// <see cref="Gemm.SumSplits{T, K}"/> sums into C; each range is at least <see cref="Gemm.MinSplitDepth"/>
    /// deep, so computing it costs far more than writing and reading its partial product.
    /// </summary>
    public readonly GemmArguments SplitFor<C>(int batch, int multiprocessors) where C : struct, IGemmTile
    {
        long groups = Groups<C>(batch);
        int k = TotalK;
        if (groups >= multiprocessors || k < 2 * Gemm.MinSplitDepth) return this;
        long wanted = Math.Min((2L * multiprocessors + groups - 1) / groups, k / Gemm.MinSplitDepth);
        int splits = (int)Math.Min(wanted, Gemm.MaxSplits);
        int depth = (k + splits - 1) / splits;
        depth = (depth + Gemm.Depth - 1) / Gemm.Depth * Gemm.Depth;
        return this with { Splits = (k + depth - 1) / depth, SplitDepth = depth };
    }

    /// <summary>Where the partial products of a split K go: <see cref="KRanges"/>·batch dense M×N products,
    /// written, not added (the sum adds them to C).</summary>
    public readonly GemmArguments Partials => this with { Ldc = N, StrideC = M * N };
}

/// <summary>Which of a device's four tilings a product runs with (see <see cref="Gemm.Plan{TLarge, TSmall, TThin16, TThin32}"/>).</summary>
public enum GemmTiling
{
    /// <summary>128×128 blocks on a GPU.</summary>
    Large,
    /// <summary>64×64 blocks on a GPU.</summary>
    Small,
    /// <summary>Blocks of 16 rows.</summary>
    Thin16,
    /// <summary>Blocks of 32 rows.</summary>
    Thin32,
}

/// <summary>Four consecutive elements: one 16-byte (float) or two 16-byte (double) shared-memory loads.</summary>
public readonly struct Quad<T>(T x, T y, T z, T w) where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>The elements in order.</summary>
    public readonly T X = x, Y = y, Z = z, W = w;

    /// <summary>This + s·b, element by element.</summary>
    public Quad<T> Add(T s, Quad<T> b) => new(X + s * b.X, Y + s * b.Y, Z + s * b.Z, W + s * b.W);
}

/// <summary>A 4×4 block of accumulators, by rows: values, not memory, so ILGPU keeps them in registers.</summary>
public readonly struct Block4<T>(Quad<T> r0, Quad<T> r1, Quad<T> r2, Quad<T> r3) where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>The rows.</summary>
    public readonly Quad<T> R0 = r0, R1 = r1, R2 = r2, R3 = r3;

    /// <summary>This + a·bᵀ (a rank-one update: 16 multiply-adds).</summary>
    public Block4<T> Add(Quad<T> a, Quad<T> b) => new(R0.Add(a.X, b), R1.Add(a.Y, b), R2.Add(a.Z, b), R3.Add(a.W, b));

    /// <summary>Row <paramref name="r"/>.</summary>
    public Quad<T> Row(int r) => r == 0 ? R0 : r == 1 ? R1 : r == 2 ? R2 : R3;
}

/// <summary>A thread's blocks of C: <c>C00</c> alone when H = 1; the four quadrants when H = 2.</summary>
public readonly struct Accumulators<T>(Block4<T> c00, Block4<T> c01, Block4<T> c10, Block4<T> c11)
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>The blocks at (rows, columns) offset (0, 0), (0, TX·4), (TY·4, 0), (TY·4, TX·4).</summary>
    public readonly Block4<T> C00 = c00, C01 = c01, C10 = c10, C11 = c11;
}

/// <summary>
/// Tiled dense matrix products (SGEMM and DGEMM, either operand transposed, batched over the grid's third
/// axis) with shared-memory staging and register blocking; accumulation in the element type, as cuBLAS does.
/// </summary>
public static class Gemm
{
    /// <summary>Depth of one shared-memory slice of K.</summary>
    public const int Depth = 8;

    /// <summary>The shallowest range of K a split product gives a group: 32 slices.</summary>
    public const int MinSplitDepth = 256;

    /// <summary>The most ranges K is cut into (bounds the partial products' workspace).</summary>
    public const int MaxSplits = 256;

    /// <summary>Rows of C per group: 4·TY·H.</summary>
    public static int BlockRows<C>() where C : struct, IGemmTile
    {
        C t = default;
        return 4 * t.TY * t.H;
    }

    /// <summary>Columns of C per group: 4·TX·H.</summary>
    public static int BlockColumns<C>() where C : struct, IGemmTile
    {
        C t = default;
        return 4 * t.TX * t.H;
    }

    /// <summary>
    /// The tiling for <paramref name="batch"/> products <paramref name="p"/> on a device of
    /// <paramref name="multiprocessors"/>, and the product with K split where that tiling leaves multiprocessors idle
    /// (<see cref="GemmArguments.SplitFor{C}"/>). A product of few rows takes the thin block that holds them, since a
    /// square block would multiply padding: 16 rows in a 128-row block is 8 multiply-adds issued per useful one
    /// (ResNet-20's first stage, whose convolutions have 16 output channels). Otherwise the large block when it gives
    /// every multiprocessor two, else the small one, a quarter of the block, so a product of few blocks is spread.
    /// </summary>
    public static (GemmTiling Tiling, GemmArguments Product) Plan<TLarge, TSmall, TThin16, TThin32>(GemmArguments p, int batch, int multiprocessors)
        where TLarge : struct, IGemmTile where TSmall : struct, IGemmTile where TThin16 : struct, IGemmTile where TThin32 : struct, IGemmTile
    {
        if (p.M <= BlockRows<TThin16>()) return (GemmTiling.Thin16, p.SplitFor<TThin16>(batch, multiprocessors));
        if (p.M <= BlockRows<TThin32>()) return (GemmTiling.Thin32, p.SplitFor<TThin32>(batch, multiprocessors));
        if (p.Groups<TLarge>(batch) >= 2L * multiprocessors) return (GemmTiling.Large, p);
        return (GemmTiling.Small, p.SplitFor<TSmall>(batch, multiprocessors));
    }

    /// <summary>Multiply-adds the tiling <typeparamref name="C"/> issues for <paramref name="batch"/> products: every
    /// block's full BM×BN over each range of K rounded up to whole slices (padding included).</summary>
    public static long IssuedMultiplyAdds<C>(GemmArguments p, int batch) where C : struct, IGemmTile
    {
        // Ranges and the second pair start on whole slices, so only the end of K is padded.
        long depth = (p.TotalK + Depth - 1) / Depth * Depth;
        long blocks = (long)((p.N + BlockColumns<C>() - 1) / BlockColumns<C>()) * ((p.M + BlockRows<C>() - 1) / BlockRows<C>());
        return blocks * BlockRows<C>() * BlockColumns<C>() * depth * batch;
    }

    /// <summary>Multiply-adds <paramref name="batch"/> products need: batch·M·N·K for each pair.</summary>
    public static long UsefulMultiplyAdds(GemmArguments p, int batch) => (long)batch * p.M * p.N * p.K * (p.Pairs == 2 ? 2 : 1);

    /// <summary>
    /// C[b] = op(A[b])·op(B[b]) (+ op(A2[b])·op(B2[b]) when <see cref="GemmArguments.Pairs"/> is 2; A2 and B2 are
    /// read only then). With K split
    /// (<see cref="GemmArguments.Splits"/> &gt; 1) the groups of range s of product b compute that range's
    /// partial product into C's product b·Splits + s (C is then the workspace, <see cref="GemmArguments.Partials"/>).
    /// </summary>
    public static void Multiply<T, C>(ArrayView<T> a, ArrayView<T> b, ArrayView<T> a2, ArrayView<T> b2, ArrayView<T> c, GemmArguments p)
        where T : unmanaged, IFloatingPointIeee754<T> where C : struct, IGemmTile
    {
        C tile = default;
        int threadsX = tile.TX, threadsY = tile.TY, h = tile.H;
        int bm = BlockRows<C>(), bn = BlockColumns<C>(), threads = threadsX * threadsY;
        // Slices stored k-major (a row of A's slice is one k), each row padded by one quad: the transposing
        // stores of a row-major A (and a column-major B) then fall in distinct banks.
        int rowA = bm / 4 + 1, rowB = bn / 4 + 1;
        var sa = SharedMemory.Allocate<Quad<T>>(Depth * rowA);
        var sb = SharedMemory.Allocate<Quad<T>>(Depth * rowB);
        var saScalar = sa.Cast<T>();
        var sbScalar = sb.Cast<T>();

        int t = Group.IdxX, tx = t % threadsX, ty = t / threadsX;
        int ranges = p.KRanges, batch = Grid.IdxZ / ranges, range = Grid.IdxZ - batch * ranges;
        int i0 = Grid.IdxY * bm, j0 = Grid.IdxX * bn;
        int total = p.TotalK, second = p.Pairs == 2 ? p.SecondPairStart : int.MaxValue;
        int kBegin = ranges == 1 ? 0 : range * p.SplitDepth, kEnd = ranges == 1 ? total : Math.Min(total, kBegin + p.SplitDepth);
        long offA = (long)batch * p.StrideA, offB = (long)batch * p.StrideB, offC = (long)Grid.IdxZ * p.StrideC;
        // Strides of A's (row, k) and B's (k, column) as stored.
        int aRow = p.TransA == 0 ? p.Lda : 1, aK = p.TransA == 0 ? 1 : p.Lda;
        int bK = p.TransB == 0 ? p.Ldb : 1, bCol = p.TransB == 0 ? 1 : p.Ldb;

        var zero = new Quad<T>(T.Zero, T.Zero, T.Zero, T.Zero);
        var z = new Block4<T>(zero, zero, zero, zero);
        var acc = new Accumulators<T>(z, z, z, z);

        for (int k0 = kBegin; k0 < kEnd; k0 += Depth)
        {
            // The slice's pair (slices and ranges start on whole slices, and so does the second pair), its first k within
            // that pair, and the pair's k that ends the slice's valid part.
            bool inSecond = k0 >= second;
            var av = inSecond ? a2 : a;
            var bv = inSecond ? b2 : b;
            int k1 = inSecond ? k0 - second : k0, kLimit = inSecond ? kEnd - second : Math.Min(kEnd, p.K);
            // Stage the slices, the stored layout's contiguous index varying fastest across threads (coalesced).
            for (int e = t; e < bm * Depth; e += threads)
            {
                int i, kk;
                if (p.TransA == 0) { i = e / Depth; kk = e - i * Depth; } else { kk = e / bm; i = e - kk * bm; }
                int gi = i0 + i, gk = k1 + kk;
                saScalar[kk * 4 * rowA + i] = gi < p.M && gk < kLimit ? av[offA + (long)gi * aRow + (long)gk * aK] : T.Zero;
            }
            for (int e = t; e < bn * Depth; e += threads)
            {
                int j, kk;
                if (p.TransB == 0) { kk = e / bn; j = e - kk * bn; } else { j = e / Depth; kk = e - j * Depth; }
                int gj = j0 + j, gk = k1 + kk;
                sbScalar[kk * 4 * rowB + j] = gj < p.N && gk < kLimit ? bv[offB + (long)gk * bK + (long)gj * bCol] : T.Zero;
            }
            Group.Barrier();
            // The slice's Depth (8) rank-one updates written out: the accumulators then pass through a loop's
            // join once per slice, not once per k.
            int qa = ty, qb = tx;
            acc = Update<T, C>(acc, sa, sb, qa, qb);
            acc = Update<T, C>(acc, sa, sb, qa += rowA, qb += rowB);
            acc = Update<T, C>(acc, sa, sb, qa += rowA, qb += rowB);
            acc = Update<T, C>(acc, sa, sb, qa += rowA, qb += rowB);
            acc = Update<T, C>(acc, sa, sb, qa += rowA, qb += rowB);
            acc = Update<T, C>(acc, sa, sb, qa += rowA, qb += rowB);
            acc = Update<T, C>(acc, sa, sb, qa += rowA, qb += rowB);
            acc = Update<T, C>(acc, sa, sb, qa + rowA, qb + rowB);
            Group.Barrier();
        }

        Store(c, p, offC, i0 + ty * 4, j0 + tx * 4, acc.C00);
        if (h == 2)
        {
            Store(c, p, offC, i0 + ty * 4, j0 + (threadsX + tx) * 4, acc.C01);
            Store(c, p, offC, i0 + (threadsY + ty) * 4, j0 + tx * 4, acc.C10);
            Store(c, p, offC, i0 + (threadsY + ty) * 4, j0 + (threadsX + tx) * 4, acc.C11);
        }
    }

    /// <summary>
    /// C[b] = Σₛ P[b·S + s] for the S = <see cref="GemmArguments.Splits"/> partial products of a split K
    /// (laid out as <see cref="GemmArguments.Partials"/>), summed in float64 in range order: one thread per element
    /// of C, over <paramref name="batch"/> products.
    /// </summary>
    public static void SumSplits<T, K>(ArrayView<T> partials, ArrayView<T> c, GemmArguments p, int batch)
        where T : unmanaged, IFloatingPointIeee754<T> where K : struct, IScalarKind<T>
    {
        K kind = default;
        int size = p.M * p.N, ranges = p.KRanges;
        for (int o = KernelCache.First; o < batch * size; o += KernelCache.Step)
        {
            int b = o / size, e = o - b * size, i = e / p.N, j = e - i * p.N;
            long at = (long)b * p.StrideC + (long)i * p.Ldc + j;
            double sum = 0;
            for (int s = 0; s < ranges; s++) sum += kind.ToDouble(partials[((long)b * ranges + s) * size + e]);
            c[at] = kind.From(sum);
        }
    }

    /// <summary>One rank-one update of the thread's blocks from the A quad <paramref name="qa"/> and the B quad
    /// <paramref name="qb"/> of the staged slices (and, when H = 2, the quads TY and TX further on).</summary>
    private static Accumulators<T> Update<T, C>(Accumulators<T> acc, ArrayView<Quad<T>> sa, ArrayView<Quad<T>> sb, int qa, int qb)
        where T : unmanaged, IFloatingPointIeee754<T> where C : struct, IGemmTile
    {
        C tile = default;
        var a0 = sa[qa];
        var b0 = sb[qb];
        if (tile.H == 1) return new(acc.C00.Add(a0, b0), acc.C01, acc.C10, acc.C11);
        var a1 = sa[qa + tile.TY];
        var b1 = sb[qb + tile.TX];
        return new(acc.C00.Add(a0, b0), acc.C01.Add(a0, b1), acc.C10.Add(a1, b0), acc.C11.Add(a1, b1));
    }

    /// <summary>Writes the 4×4 block whose top-left element is C[i, j], inside C's bounds.</summary>
    private static void Store<T>(ArrayView<T> c, GemmArguments p, long offC, int i, int j, Block4<T> block)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int r = 0; r < 4; r++)
        {
            if (i + r >= p.M) return;
            var row = block.Row(r);
            long at = offC + (long)(i + r) * p.Ldc + j;
            if (j < p.N) c[at] = row.X;
            if (j + 1 < p.N) c[at + 1] = row.Y;
            if (j + 2 < p.N) c[at + 2] = row.Z;
            if (j + 3 < p.N) c[at + 3] = row.W;
        }
    }
}
