using System.Numerics;
using System.Numerics.Tensors;

namespace Curvature.Kernels.Cpu;

/// <summary>Row-wise softmax, log-softmax, the softmax Jacobian product, and the fused softmax cross-entropy with its gradient.</summary>
public static class Softmax
{
    /// <summary>dst[i, :] = x[i, :] − log Σⱼ exp x[i, j], computed stably (max subtracted first).</summary>
    public static void LogSoftmaxRows<T>(ReadOnlySpan<T> x, int rows, int cols, Span<T> dst) where T : unmanaged, IFloatingPointIeee754<T>
    {
        unsafe
        {
            fixed (T* px = x) fixed (T* pd = dst)
            {
                T* ppx = px, ppd = pd;
                ForEachRow(rows, cols, r =>
                {
                    var xr = new ReadOnlySpan<T>(ppx + r * cols, cols);
                    var dr = new Span<T>(ppd + r * cols, cols);
                    TensorPrimitives.Subtract(xr, LogSumExp(xr, dr), dr);
                });
            }
        }
    }

    /// <summary>dst[i, :] = softmax(x[i, :]): exp(x − max) normalized, in one row-local pass.</summary>
    public static void SoftmaxRows<T>(ReadOnlySpan<T> x, int rows, int cols, Span<T> dst) where T : unmanaged, IFloatingPointIeee754<T>
    {
        unsafe
        {
            fixed (T* px = x) fixed (T* pd = dst)
            {
                T* ppx = px, ppd = pd;
                ForEachRow(rows, cols, r =>
                {
                    var xr = new ReadOnlySpan<T>(ppx + r * cols, cols);
                    var dr = new Span<T>(ppd + r * cols, cols);
                    TensorPrimitives.Subtract(xr, TensorPrimitives.Max(xr), dr);
                    TensorPrimitives.Exp(dr, dr);
                    TensorPrimitives.Multiply(dr, T.One / TensorPrimitives.Sum<T>(dr), dr);
                });
            }
        }
    }

    /// <summary>dst[i, :] = y[i, :] ⊙ (g[i, :] − y[i, :]·g[i, :]): softmax's Jacobian (symmetric) applied to g, row by row.</summary>
    public static void SoftmaxJacobianRows<T>(ReadOnlySpan<T> y, ReadOnlySpan<T> g, int rows, int cols, Span<T> dst) where T : unmanaged, IFloatingPointIeee754<T>
    {
        unsafe
        {
            fixed (T* py = y) fixed (T* pg = g) fixed (T* pd = dst)
            {
                T* ys = py, gs = pg, ds = pd;
                ForEachRow(rows, cols, r =>
                {
                    var yr = new ReadOnlySpan<T>(ys + r * cols, cols);
                    var gr = new ReadOnlySpan<T>(gs + r * cols, cols);
                    var dr = new Span<T>(ds + r * cols, cols);
                    TensorPrimitives.Subtract(gr, TensorPrimitives.Dot(yr, gr), dr);
                    TensorPrimitives.Multiply(dr, yr, dr);
                });
            }
        }
    }

    /// <summary>Rows in fixed chunks of about 8K elements (independent of the thread count), in parallel when there are several.</summary>
    private static void ForEachRow(int rows, int cols, Action<long> row) =>
        Parallelism.ForChunks(rows, RowsPerChunk(cols), (r0, n) =>
        {
            for (long r = r0; r < r0 + n; r++) row(r);
        });

    private static int RowsPerChunk(int cols) => Math.Max(1, 8192 / Math.Max(1, cols));

    /// <summary>log Σ exp x, using <paramref name="scratch"/> (same length) as workspace.</summary>
    private static T LogSumExp<T>(ReadOnlySpan<T> x, Span<T> scratch) where T : unmanaged, IFloatingPointIeee754<T>
    {
        T max = TensorPrimitives.Max(x);
        TensorPrimitives.Subtract(x, max, scratch);
        TensorPrimitives.Exp(scratch, scratch);
        return max + T.Log(TensorPrimitives.Sum(scratch));
    }

    /// <summary>
    /// Mean over rows of −log softmax(x)[label] (cross-entropy of integer labels), and optionally the
    /// gradient (softmax(x) − onehot(label)) / rows into <paramref name="gradient"/>.
    /// </summary>
    public static T CrossEntropy<T>(ReadOnlySpan<T> x, int rows, int cols, ReadOnlySpan<long> labels, Span<T> gradient, bool withGradient)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var perRow = new T[rows];
        T invRows = T.One / T.CreateChecked(rows);
        unsafe
        {
            fixed (T* px = x) fixed (T* pg = gradient) fixed (long* pl = labels)
            {
                T* ppx = px, ppg = pg; long* ppl = pl;
                // Chunks, not rows: each chunk allocates its own scratch row once.
                Parallelism.ForChunks(rows, RowsPerChunk(cols), (r0, n) =>
                {
                    T[]? scratchArr = withGradient ? null : new T[cols];
                    for (long r = r0; r < r0 + n; r++)
                    {
                        long label = ppl[r];
                        if ((ulong)label >= (ulong)cols) throw new ArgumentOutOfRangeException(nameof(labels), $"cross-entropy: label {label} of row {r} is outside [0, {cols}).");
                        var xr = new ReadOnlySpan<T>(ppx + r * cols, cols);
                        Span<T> s = withGradient ? new Span<T>(ppg + r * cols, cols) : scratchArr;
                        T lse = LogSumExp(xr, s);
                        perRow[r] = lse - xr[(int)label];
                        if (withGradient)
                        {
                            // s holds exp(x − max); softmax = s / Σ s.
                            T scale = invRows / T.Exp(lse - TensorPrimitives.Max(xr));
                            TensorPrimitives.Multiply(s, scale, s);
                            s[(int)label] -= invRows;
                        }
                    }
                });
            }
        }
        T total = T.Zero;
        for (int r = 0; r < rows; r++) total += perRow[r];
        return total * invRows;
    }
}
