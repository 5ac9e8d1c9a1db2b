using System.Numerics;
using ILGPU;

namespace Curvature.Kernels.Gpu;

/// <summary>A GEMM tiling: each group computes a BM×BN block of C, stepping through K in BK-deep slices held in
/// shared memory; each thread keeps an RM×RN block of C in registers (register blocking).</summary>
public interface IGemmTile
{
    /// <summary>Rows of C per group.</summary>
    int BM { get; }
    /// <summary>Columns of C per group.</summary>
    int BN { get; }
    /// <summary>Depth of one shared-memory slice.</summary>
    int BK { get; }
    /// <summary>Rows of C per thread.</summary>
    int RM { get; }
    /// <summary>Columns of C per thread.</summary>
    int RN { get; }
}

/// <summary>64×64 blocks, 16 deep, 4×4 per thread: 256 threads (GPUs).</summary>
public readonly struct LargeTile : IGemmTile
{
    /// <inheritdoc/>
    public int BM => 64;
    /// <inheritdoc/>
    public int BN => 64;
    /// <inheritdoc/>
    public int BK => 16;
    /// <inheritdoc/>
    public int RM => 4;
    /// <inheritdoc/>
    public int RN => 4;
}

/// <summary>16×16 blocks, 8 deep, 4×4 per thread: 16 threads (ILGPU's CPU accelerator, which allows at most 16 per group).</summary>
public readonly struct SmallTile : IGemmTile
{
    /// <inheritdoc/>
    public int BM => 16;
    /// <inheritdoc/>
    public int BN => 16;
    /// <inheritdoc/>
    public int BK => 8;
    /// <inheritdoc/>
    public int RM => 4;
    /// <inheritdoc/>
    public int RN => 4;
}

/// <summary>Which <see cref="IGemmTile"/> a device uses.</summary>
public enum GemmShape
{
    /// <summary><see cref="SmallTile"/>.</summary>
    Small,
    /// <summary><see cref="LargeTile"/>.</summary>
    Large,
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
    /// <summary>1 to add the product to C (a bilinear JVP's second term), 0 to overwrite C.</summary>
    public int Accumulate;

    /// <summary>The launch: one group per BM×BN block of C per batch entry.</summary>
    public readonly (Index3D Grid, Index3D Group) Launch<C>(int batch) where C : struct, IGemmTile
    {
        C t = default;
        return (new Index3D((N + t.BN - 1) / t.BN, (M + t.BM - 1) / t.BM, batch), new Index3D(t.BM / t.RM * (t.BN / t.RN), 1, 1));
    }
}

/// <summary>
/// Tiled dense matrix products (SGEMM and DGEMM, either operand transposed, batched over the grid's third
/// axis) with shared-memory staging and register blocking; accumulation in the element type, as cuBLAS does.
/// </summary>
public static class Gemm
{
    /// <summary>C[b] = op(A[b])·op(B[b]), or C[b] += … when <see cref="GemmArguments.Accumulate"/> is 1.</summary>
    public static void Multiply<T, C>(ArrayView<T> a, ArrayView<T> b, ArrayView<T> c, GemmArguments p)
        where T : unmanaged, IFloatingPointIeee754<T> where C : struct, IGemmTile
    {
        C tile = default;
        int bm = tile.BM, bn = tile.BN, bk = tile.BK, rm = tile.RM, rn = tile.RN;
        var sa = SharedMemory.Allocate<T>(tile.BM * tile.BK);
        var sb = SharedMemory.Allocate<T>(tile.BK * tile.BN);
        var acc = LocalMemory.Allocate<T>(tile.RM * tile.RN);
        var ra = LocalMemory.Allocate<T>(tile.RM);
        var rb = LocalMemory.Allocate<T>(tile.RN);

        int threads = bm / rm * (bn / rn), t = Group.IdxX;
        int tx = t % (bn / rn), ty = t / (bn / rn);
        int i0 = Grid.IdxY * bm, j0 = Grid.IdxX * bn, batch = Grid.IdxZ;
        int offA = batch * p.StrideA, offB = batch * p.StrideB, offC = batch * p.StrideC;
        for (int e = 0; e < rm * rn; e++) acc[e] = T.Zero;

        for (int k0 = 0; k0 < p.K; k0 += bk)
        {
            // Stage the slices, the stored layout's contiguous index varying fastest across threads (coalesced).
            for (int e = t; e < bm * bk; e += threads)
            {
                int i, kk;
                if (p.TransA == 0) { i = e / bk; kk = e - i * bk; } else { kk = e / bm; i = e - kk * bm; }
                int gi = i0 + i, gk = k0 + kk;
                sa[kk * bm + i] = gi < p.M && gk < p.K ? a[offA + (p.TransA == 0 ? gi * p.Lda + gk : gk * p.Lda + gi)] : T.Zero;
            }
            for (int e = t; e < bk * bn; e += threads)
            {
                int j, kk;
                if (p.TransB == 0) { kk = e / bn; j = e - kk * bn; } else { j = e / bk; kk = e - j * bk; }
                int gj = j0 + j, gk = k0 + kk;
                sb[kk * bn + j] = gj < p.N && gk < p.K ? b[offB + (p.TransB == 0 ? gk * p.Ldb + gj : gj * p.Ldb + gk)] : T.Zero;
            }
            Group.Barrier();
            for (int kk = 0; kk < bk; kk++)
            {
                for (int r = 0; r < rm; r++) ra[r] = sa[kk * bm + ty * rm + r];
                for (int s = 0; s < rn; s++) rb[s] = sb[kk * bn + tx * rn + s];
                for (int r = 0; r < rm; r++)
                    for (int s = 0; s < rn; s++)
                        acc[r * rn + s] += ra[r] * rb[s];
            }
            Group.Barrier();
        }

        for (int r = 0; r < rm; r++)
        {
            int gi = i0 + ty * rm + r;
            if (gi >= p.M) continue;
            for (int s = 0; s < rn; s++)
            {
                int gj = j0 + tx * rn + s;
                if (gj >= p.N) continue;
                int at = offC + gi * p.Ldc + gj;
                c[at] = p.Accumulate != 0 ? c[at] + acc[r * rn + s] : acc[r * rn + s];
            }
        }
    }
}
