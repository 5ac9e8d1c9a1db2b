using Curvature.Engine;
using Curvature.Spectral;

namespace Curvature.Tests.Spectral;

/// <summary>An operator written out as a dense matrix, one product per column (for small operators in tests).</summary>
internal static class DenseMatrix
{
    /// <summary>The n×n matrix whose j-th column is op·eⱼ.</summary>
    public static double[,] Of(ILinearOperator op)
    {
        int n = (int)op.Dimension;
        var m = new double[n, n];
        for (int j = 0; j < n; j++)
        {
            var e = new double[n];
            e[j] = 1;
            var column = op.Apply(NdArray.FromArray(e, new Shape(n)).Cast(op.DType)).ToDoubleArray();
            for (int i = 0; i < n; i++) m[i, j] = column[i];
        }
        return m;
    }

    /// <summary>
    /// Eigenvalues ascending and eigenvectors as columns by cyclic Jacobi rotations: slow, but accurate to working
    /// precision and independent of the QL code the engine uses, so a reference for it.
    /// </summary>
    public static (double[] Values, double[,] Vectors) JacobiEigen(double[,] matrix)
    {
        int n = matrix.GetLength(0);
        if (matrix.GetLength(1) != n) throw new ArgumentException($"eigen: the matrix is {n}×{matrix.GetLength(1)}; expected square.");
        var a = (double[,])matrix.Clone();
        var v = new double[n, n];
        for (int i = 0; i < n; i++) v[i, i] = 1;
        for (int sweep = 0; sweep < 100; sweep++)
        {
            double off = 0, total = 0;
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++) { total += a[i, j] * a[i, j]; if (i != j) off += a[i, j] * a[i, j]; }
            if (off <= 1e-30 * total || off == 0) break;
            for (int p = 0; p < n - 1; p++)
                for (int q = p + 1; q < n; q++)
                {
                    if (a[p, q] == 0) continue;
                    double theta = (a[q, q] - a[p, p]) / (2 * a[p, q]);
                    double t = Math.Sign(theta == 0 ? 1 : theta) / (Math.Abs(theta) + Math.Sqrt(theta * theta + 1));
                    double c = 1 / Math.Sqrt(t * t + 1), s = t * c;
                    for (int k = 0; k < n; k++)
                    {
                        double akp = a[k, p], akq = a[k, q];
                        a[k, p] = c * akp - s * akq; a[k, q] = s * akp + c * akq;
                    }
                    for (int k = 0; k < n; k++)
                    {
                        double apk = a[p, k], aqk = a[q, k];
                        a[p, k] = c * apk - s * aqk; a[q, k] = s * apk + c * aqk;
                    }
                    for (int k = 0; k < n; k++)
                    {
                        double vkp = v[k, p], vkq = v[k, q];
                        v[k, p] = c * vkp - s * vkq; v[k, q] = s * vkp + c * vkq;
                    }
                }
        }
        var order = Enumerable.Range(0, n).OrderBy(i => a[i, i]).ToArray();
        var vectors = new double[n, n];
        for (int j = 0; j < n; j++)
            for (int k = 0; k < n; k++) vectors[k, j] = v[k, order[j]];
        return (order.Select(i => a[i, i]).ToArray(), vectors);
    }
}
