using System.Numerics;
using ILGPU;

namespace Curvature.Kernels.Gpu;

/// <summary>
/// Row-wise softmax, log-softmax, softmax's Jacobian product and the fused cross-entropy, one thread per row
/// (rows here are class scores, vocabularies or attention rows: tens to hundreds of columns), the max
/// subtracted first and sums accumulated in float64.
/// </summary>
public static class Softmax
{
    /// <summary>r[i, :] = x[i, :] − log Σⱼ exp x[i, j].</summary>
    public static void LogSoftmaxRows<T, K>(ArrayView<T> x, ArrayView<T> r, int rows, int cols)
        where T : unmanaged, IFloatingPointIeee754<T> where K : struct, IScalarKind<T>
    {
        K k = default;
        for (int row = KernelCache.First; row < rows; row += KernelCache.Step)
        {
            int at = row * cols;
            double lse = LogSumExp<T, K>(x, at, cols);
            for (int j = 0; j < cols; j++) r[at + j] = k.From(k.ToDouble(x[at + j]) - lse);
        }
    }

    /// <summary>r[i, :] = softmax(x[i, :]).</summary>
    public static void SoftmaxRows<T, K>(ArrayView<T> x, ArrayView<T> r, int rows, int cols)
        where T : unmanaged, IFloatingPointIeee754<T> where K : struct, IScalarKind<T>
    {
        K k = default;
        for (int row = KernelCache.First; row < rows; row += KernelCache.Step)
        {
            int at = row * cols;
            double lse = LogSumExp<T, K>(x, at, cols);
            for (int j = 0; j < cols; j++) r[at + j] = k.From(ScalarMath.Exp(k.ToDouble(x[at + j]) - lse));
        }
    }

    /// <summary>r[i, :] = y[i, :] ⊙ (g[i, :] − y[i, :]·g[i, :]).</summary>
    public static void SoftmaxJacobianRows<T, K>(ArrayView<T> y, ArrayView<T> g, ArrayView<T> r, int rows, int cols)
        where T : unmanaged, IFloatingPointIeee754<T> where K : struct, IScalarKind<T>
    {
        K k = default;
        for (int row = KernelCache.First; row < rows; row += KernelCache.Step)
        {
            int at = row * cols;
            double dot = 0;
            for (int j = 0; j < cols; j++) dot += k.ToDouble(y[at + j]) * k.ToDouble(g[at + j]);
            T d = k.From(dot);
            for (int j = 0; j < cols; j++) r[at + j] = y[at + j] * (g[at + j] - d);
        }
    }

    /// <summary>
    /// perRow[i] = log Σ exp x[i, :] − x[i, label] and, when <paramref name="withGradient"/> ≠ 0,
    /// gradient[i, :] = (softmax(x[i, :]) − onehot(label))/rows. A label outside [0, cols) makes the row's loss NaN
    /// (a kernel cannot throw; the non-finite loss stops training with the step named).
    /// </summary>
    public static void CrossEntropyRows<T, K>(ArrayView<T> x, ArrayView<long> labels, ArrayView<T> perRow, ArrayView<T> gradient, int cols, int withGradient)
        where T : unmanaged, IFloatingPointIeee754<T> where K : struct, IScalarKind<T>
    {
        K k = default;
        int rows = perRow.IntLength;
        for (int row = KernelCache.First; row < rows; row += KernelCache.Step)
        {
            int at = row * cols;
            long label = labels[row];
            double lse = LogSumExp<T, K>(x, at, cols);
            bool valid = label >= 0 && label < cols;
            perRow[row] = valid ? k.From(lse - k.ToDouble(x[at + (int)label])) : T.NaN;
            if (withGradient != 0)
                for (int j = 0; j < cols; j++)
                    gradient[at + j] = k.From((ScalarMath.Exp(k.ToDouble(x[at + j]) - lse) - (j == label ? 1.0 : 0.0)) / rows);
        }
    }

    private static double LogSumExp<T, K>(ArrayView<T> x, int at, int cols)
        where T : unmanaged, IFloatingPointIeee754<T> where K : struct, IScalarKind<T>
    {
        K k = default;
        double m = double.NegativeInfinity;
        for (int j = 0; j < cols; j++) m = Math.Max(m, k.ToDouble(x[at + j]));
        if (double.IsInfinity(m)) return m;
        double s = 0;
        for (int j = 0; j < cols; j++) s += ScalarMath.Exp(k.ToDouble(x[at + j]) - m);
        return m + ScalarMath.Log(s);
    }
}
