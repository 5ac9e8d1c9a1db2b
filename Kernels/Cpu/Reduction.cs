using System.Numerics;
using System.Numerics.Tensors;

namespace Curvature.Kernels.Cpu;

/// <summary>
/// Reductions of an array viewed as [outer, r, inner] over its middle axis. Every output element is
/// accumulated in a fixed order (chunks of fixed size, combined left to right), so the bits do not depend
/// on the thread count.
/// </summary>
public static class Reduction
{
    private const int Chunk = 1 << 14;

    /// <summary>dst[o, i] = op over j of x[o, j, i].</summary>
    public static void Reduce<T>(ReduceOp op, ReadOnlySpan<T> x, int outer, int r, int inner, Span<T> dst)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        unsafe
        {
            fixed (T* px = x) fixed (T* pd = dst)
            {
                T* ppx = px, ppd = pd;
                if (inner == 1)
                {
                    if (outer == 1) { *ppd = ReduceLong(op, new ReadOnlySpan<T>(ppx, r)); return; }
                    int perTask = Math.Max(1, Chunk / Math.Max(1, r));
                    Parallelism.ForChunks(outer, perTask, (o0, n) =>
                    {
                        for (long o = o0; o < o0 + n; o++) ppd[o] = ReduceLong(op, new ReadOnlySpan<T>(ppx + o * r, r));
                    });
                    return;
                }
                // Sum rows of length inner; parallel over (outer × column chunks).
                int colChunk = Math.Min(inner, 4096);
                int colChunks = (inner + colChunk - 1) / colChunk;
                Parallelism.For(outer * colChunks, t =>
                {
                    int o = t / colChunks, c0 = t % colChunks * colChunk;
                    int n = Math.Min(colChunk, inner - c0);
                    var acc = new Span<T>(ppd + (long)o * inner + c0, n);
                    T* baseX = ppx + (long)o * r * inner + c0;
                    new ReadOnlySpan<T>(baseX, n).CopyTo(acc);
                    for (int j = 1; j < r; j++)
                    {
                        var row = new ReadOnlySpan<T>(baseX + (long)j * inner, n);
                        if (op == ReduceOp.Sum) TensorPrimitives.Add(acc, row, acc);
                        else TensorPrimitives.Max(acc, row, acc);
                    }
                });
            }
        }
    }

    /// <summary>Sum or max of a contiguous span in fixed-size chunks combined left to right.</summary>
    public static T ReduceLong<T>(ReduceOp op, ReadOnlySpan<T> x) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (x.Length <= Chunk) return op == ReduceOp.Sum ? TensorPrimitives.Sum(x) : TensorPrimitives.Max(x);
        int chunks = (x.Length + Chunk - 1) / Chunk;
        var partial = new T[chunks];
        unsafe
        {
            fixed (T* px = x)
            {
                T* ppx = px; int len = x.Length;
                Parallelism.For(chunks, c =>
                {
                    var s = new ReadOnlySpan<T>(ppx + (long)c * Chunk, Math.Min(Chunk, len - c * Chunk));
                    partial[c] = op == ReduceOp.Sum ? TensorPrimitives.Sum(s) : TensorPrimitives.Max(s);
                });
            }
        }
        T acc = partial[0];
        for (int c = 1; c < chunks; c++) acc = op == ReduceOp.Sum ? acc + partial[c] : (T.IsNaN(acc) || T.IsNaN(partial[c]) ? T.NaN : T.Max(acc, partial[c]));
        return acc;
    }

    /// <summary>Σ xᵢ·yᵢ in fixed-size chunks combined left to right.</summary>
    public static T Dot<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> y) where T : unmanaged, IFloatingPointIeee754<T>
    {
        T acc = T.Zero;
        for (int s = 0; s < x.Length; s += Chunk)
        {
            int n = Math.Min(Chunk, x.Length - s);
            acc += TensorPrimitives.Dot(x.Slice(s, n), y.Slice(s, n));
        }
        return acc;
    }
}
