using System.Numerics;
using System.Numerics.Tensors;

namespace Curvature.Kernels.Cpu;

/// <summary>
/// Normalisation over groups: data viewed as [A, G, B], each of the G groups holding the A·B elements
/// x[a, g, b]. BatchNorm is A = N, G = C, B = H·W; LayerNorm is A = 1, G = rows, B = features. Per group:
/// μ = mean x, σ² = mean (x − μ)² (two passes, so no cancellation), r = 1/√(σ² + ε), x̂ = (x − μ)·r; and the
/// Jacobian product J·u = r·(u − mean u − x̂·mean(u·x̂)), which is also the VJP (J is symmetric). Groups run in
/// parallel; sums are accumulated in float64 over float32 segments.
/// </summary>
public static class Normalization
{
    /// <summary>y = (x − μ)·r per group.</summary>
    public static void Normalize<T>(ReadOnlySpan<T> x, Span<T> y, int a, int g, int b, double epsilon) where T : unmanaged, IFloatingPointIeee754<T>
    {
        unsafe
        {
            fixed (T* px = x) fixed (T* py = y)
            {
                T* xs = px, ys = py;
                Parallelism.For(g, gi =>
                {
                    var (mean, r) = Statistics(xs, a, g, b, gi, epsilon);
                    T m = T.CreateTruncating(mean), rr = T.CreateTruncating(r);
                    for (int ai = 0; ai < a; ai++)
                    {
                        long o = ((long)ai * g + gi) * b;
                        var seg = new Span<T>(ys + o, b);
                        TensorPrimitives.Subtract(new ReadOnlySpan<T>(xs + o, b), m, seg);
                        TensorPrimitives.Multiply(seg, rr, seg);
                    }
                });
            }
        }
    }

    /// <summary>y = J(x)·u = r·(u − mean u − x̂·mean(u·x̂)) per group.</summary>
    public static void Jacobian<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> u, Span<T> y, int a, int g, int b, double epsilon) where T : unmanaged, IFloatingPointIeee754<T>
    {
        unsafe
        {
            fixed (T* px = x) fixed (T* pu = u) fixed (T* py = y)
            {
                T* xs = px, us = pu, ys = py;
                Parallelism.For(g, gi =>
                {
                    var (mean, r) = Statistics(xs, a, g, b, gi, epsilon);
                    T m = T.CreateTruncating(mean);
                    // Σu and Σu·(x − μ), the centred values staged in y's own segment.
                    double sumU = 0, sumUC = 0;
                    for (int ai = 0; ai < a; ai++)
                    {
                        long o = ((long)ai * g + gi) * b;
                        var seg = new Span<T>(ys + o, b);
                        var us_ = new ReadOnlySpan<T>(us + o, b);
                        TensorPrimitives.Subtract(new ReadOnlySpan<T>(xs + o, b), m, seg);
                        sumU += double.CreateTruncating(TensorPrimitives.Sum(us_));
                        sumUC += double.CreateTruncating(TensorPrimitives.Dot(us_, seg));
                    }
                    double count = (double)a * b;
                    double meanU = sumU / count, meanUXhat = r * sumUC / count;
                    // y = r·u − r·mean u − r²·mean(u·x̂)·(x − μ)
                    T ru = T.CreateTruncating(r), shift = T.CreateTruncating(-r * meanU), k = T.CreateTruncating(-r * r * meanUXhat);
                    for (int ai = 0; ai < a; ai++)
                    {
                        long o = ((long)ai * g + gi) * b;
                        var seg = new Span<T>(ys + o, b);
                        TensorPrimitives.Multiply(seg, k, seg);
                        TensorPrimitives.MultiplyAdd(new ReadOnlySpan<T>(us + o, b), ru, seg, seg);
                        TensorPrimitives.Add(seg, shift, seg);
                    }
                });
            }
        }
    }

    /// <summary>y = x·scale[gi] + shift[gi] per group, in one pass (BatchNorm's affine step).</summary>
    public static void ScaleShift<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> scale, ReadOnlySpan<T> shift, Span<T> y, int a, int g, int b) where T : unmanaged, IFloatingPointIeee754<T>
    {
        unsafe
        {
            fixed (T* px = x) fixed (T* ps = scale) fixed (T* pt = shift) fixed (T* py = y)
            {
                T* xs = px, ss = ps, ts = pt, ys = py;
                Parallelism.ForChunks((long)a * g, Math.Max(1, 16384 / Math.Max(1, b)), (start, count) =>
                {
                    for (long row = start; row < start + count; row++)
                    {
                        int gi = (int)(row % g);
                        var dst = new Span<T>(ys + row * b, b);
                        TensorPrimitives.Multiply(new ReadOnlySpan<T>(xs + row * b, b), ss[gi], dst);
                        TensorPrimitives.Add(dst, ts[gi], dst); // the row is still in L1: one pass over memory

                    }
                });
            }
        }
    }

    /// <summary>Per-group mean of the elementwise product a·b (one read pass over both).</summary>
    public static void GroupMeanProduct<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> y, Span<double> result, int a, int g, int b) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var r = new double[g];
        unsafe
        {
            fixed (T* px = x) fixed (T* py = y)
            {
                T* xs = px, ys = py;
                Parallelism.For(g, gi =>
                {
                    double sum = 0;
                    for (int ai = 0; ai < a; ai++)
                    {
                        long o = ((long)ai * g + gi) * b;
                        sum += double.CreateTruncating(TensorPrimitives.Dot(new ReadOnlySpan<T>(xs + o, b), new ReadOnlySpan<T>(ys + o, b)));
                    }
                    r[gi] = sum / ((double)a * b);
                });
            }
        }
        r.CopyTo(result);
    }

    /// <summary>Per-group mean and biased variance (two passes), for running-statistics updates.</summary>
    public static void Moments<T>(ReadOnlySpan<T> x, Span<double> mean, Span<double> variance, int a, int g, int b) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var means = new double[g];
        var variances = new double[g];
        unsafe
        {
            fixed (T* px = x)
            {
                T* xs = px;
                Parallelism.For(g, gi =>
                {
                    var (m, r) = Statistics(xs, a, g, b, gi, 0);
                    means[gi] = m;
                    variances[gi] = 1 / (r * r);
                });
            }
        }
        means.CopyTo(mean);
        variances.CopyTo(variance);
    }

    /// <summary>The mean and 1/√(σ² + ε) of group <paramref name="gi"/>, by two passes.</summary>
    private static unsafe (double Mean, double R) Statistics<T>(T* xs, int a, int g, int b, int gi, double epsilon) where T : unmanaged, IFloatingPointIeee754<T>
    {
        double sum = 0;
        for (int ai = 0; ai < a; ai++) sum += double.CreateTruncating(TensorPrimitives.Sum(new ReadOnlySpan<T>(xs + ((long)ai * g + gi) * b, b)));
        double count = (double)a * b, mean = sum / count;
        T m = T.CreateTruncating(mean);
        double squares = 0;
        const int Tile = 1024;
        Span<T> tile = stackalloc T[Math.Min(b, Tile)];
        for (int ai = 0; ai < a; ai++)
        {
            T* seg = xs + ((long)ai * g + gi) * b;
            for (int s = 0; s < b; s += Tile)
            {
                int n = Math.Min(Tile, b - s);
                var t = tile[..n];
                TensorPrimitives.Subtract(new ReadOnlySpan<T>(seg + s, n), m, t);
                squares += double.CreateTruncating(TensorPrimitives.SumOfSquares<T>(t));
            }
        }
        return (mean, 1 / Math.Sqrt(squares / count + epsilon));
    }
}
