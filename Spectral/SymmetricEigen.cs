using Curvature.Engine;

namespace Curvature.Spectral;

/// <summary>
/// Eigen-decomposition of a dense symmetric matrix: Householder reduction to tridiagonal form M = Q T Qᵀ (EISPACK's
/// tred2; Wilkinson and Reinsch, Handbook for Automatic Computation II, 1971), then the implicit QL iteration of
/// <see cref="SymmetricTridiagonal"/> rotating Qᵀ's rows, in float64. O(n³) and backward stable: the reconstruction
/// V·diag(λ)·Vᵀ and the orthogonality of V hold to a small multiple of machine precision times ‖M‖.
/// </summary>
public static class SymmetricEigen
{
    /// <summary>Eigenvalues ascending and eigenvectors as columns.</summary>
    public static (double[] Values, double[,] Vectors) Decompose(double[,] matrix)
    {
        int n = matrix.GetLength(0);
        if (matrix.GetLength(1) != n) throw new ArgumentException($"eigen: the matrix is {n}×{matrix.GetLength(1)}; expected square.");
        var flat = new double[n * n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) flat[i * n + j] = matrix[i, j];
        var (values, rows) = Decompose(flat, n);
        var vectors = new double[n, n];
        for (int j = 0; j < n; j++)
            for (int k = 0; k < n; k++) vectors[k, j] = rows[j * n + k];
        return (values, vectors);
    }

    /// <summary>
    /// Of a symmetric [n, n] array: eigenvalues ascending ([n], float64) and eigenvectors as the columns of an
    /// [n, n] array (so M = V·diag(λ)·Vᵀ), both in <paramref name="matrix"/>'s dtype and on its device.
    /// </summary>
    public static (NdArray Values, NdArray Vectors) Decompose(NdArray matrix)
    {
        if (matrix.Shape.Rank != 2 || matrix.Shape[0] != matrix.Shape[1]) throw new ArgumentException($"eigen: the matrix is {matrix.Shape}; expected square.");
        int n = matrix.Shape[0];
        var (values, rows) = Decompose(matrix.ToDoubleArray(), n);
        var vectors = NdArray.FromArray(rows, new Shape(n, n)).Transpose().Copy();
        return (NdArray.FromArray(values, new Shape(n)).Cast(matrix.DType).To(matrix.Device), vectors.Cast(matrix.DType).To(matrix.Device));
    }

    /// <summary>The decomposition of a row-major symmetric matrix (only its lower triangle is read): eigenvalues ascending, eigenvectors as rows.</summary>
    private static (double[] Values, double[] Rows) Decompose(double[] matrix, int n)
    {
        if (n == 0) return ([], []);
        var v = (double[])matrix.Clone();
        for (int i = 0; i < n; i++)
            for (int j = 0; j < i; j++) v[j * n + i] = v[i * n + j];
        var d = new double[n];
        var e = new double[n];
        Tridiagonalize(v, d, e, n);
        // tred2 leaves the subdiagonal in e[1..]; the QL iteration wants e[i] coupling i and i+1, and rotates rows,
        // so it gets Qᵀ (M = Q T Qᵀ): its rows end as M's eigenvectors.
        for (int i = 1; i < n; i++) e[i - 1] = e[i];
        var rows = new double[n * n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) rows[j * n + i] = v[i * n + j];
        SymmetricTridiagonal.Diagonalize(d, e, rows, n);
        var order = Enumerable.Range(0, n).OrderBy(i => d[i]).ToArray();
        var sorted = new double[n * n];
        for (int j = 0; j < n; j++) Array.Copy(rows, order[j] * n, sorted, j * n, n);
        return (order.Select(i => d[i]).ToArray(), sorted);
    }

    /// <summary>
    /// tred2: Householder reduction of the symmetric <paramref name="v"/> (row-major, n×n) to tridiagonal form,
    /// diagonal in <paramref name="d"/>, subdiagonal in <paramref name="e"/>[1..], the accumulated orthogonal
    /// transformation left in <paramref name="v"/>.
    /// </summary>
    private static void Tridiagonalize(double[] v, double[] d, double[] e, int n)
    {
        for (int j = 0; j < n; j++) d[j] = v[(n - 1) * n + j];
        for (int i = n - 1; i > 0; i--)
        {
            double scale = 0, h = 0;
            for (int k = 0; k < i; k++) scale += Math.Abs(d[k]);
            if (scale == 0)
            {
                e[i] = d[i - 1];
                for (int j = 0; j < i; j++)
                {
                    d[j] = v[(i - 1) * n + j];
                    v[i * n + j] = 0;
                    v[j * n + i] = 0;
                }
            }
            else
            {
                // The Householder vector, scaled against under- and overflow.
                for (int k = 0; k < i; k++) { d[k] /= scale; h += d[k] * d[k]; }
                double f = d[i - 1];
                double g = f > 0 ? -Math.Sqrt(h) : Math.Sqrt(h);
                e[i] = scale * g;
                h -= f * g;
                d[i - 1] = f - g;
                for (int j = 0; j < i; j++) e[j] = 0;
                // The similarity transformation of the remaining columns.
                for (int j = 0; j < i; j++)
                {
                    f = d[j];
                    v[j * n + i] = f;
                    g = e[j] + v[j * n + j] * f;
                    for (int k = j + 1; k <= i - 1; k++)
                    {
                        g += v[k * n + j] * d[k];
                        e[k] += v[k * n + j] * f;
                    }
                    e[j] = g;
                }
                f = 0;
                for (int j = 0; j < i; j++) { e[j] /= h; f += e[j] * d[j]; }
                double hh = f / (h + h);
                for (int j = 0; j < i; j++) e[j] -= hh * d[j];
                for (int j = 0; j < i; j++)
                {
                    f = d[j];
                    g = e[j];
                    for (int k = j; k <= i - 1; k++) v[k * n + j] -= f * e[k] + g * d[k];
                    d[j] = v[(i - 1) * n + j];
                    v[i * n + j] = 0;
                }
            }
            d[i] = h;
        }
        // Accumulate the transformations.
        for (int i = 0; i < n - 1; i++)
        {
            v[(n - 1) * n + i] = v[i * n + i];
            v[i * n + i] = 1;
            double h = d[i + 1];
            if (h != 0)
            {
                for (int k = 0; k <= i; k++) d[k] = v[k * n + i + 1] / h;
                for (int j = 0; j <= i; j++)
                {
                    double g = 0;
                    for (int k = 0; k <= i; k++) g += v[k * n + i + 1] * v[k * n + j];
                    for (int k = 0; k <= i; k++) v[k * n + j] -= g * d[k];
                }
            }
            for (int k = 0; k <= i; k++) v[k * n + i + 1] = 0;
        }
        for (int j = 0; j < n; j++)
        {
            d[j] = v[(n - 1) * n + j];
            v[(n - 1) * n + j] = 0;
        }
        v[(n - 1) * n + n - 1] = 1;
        e[0] = 0;
    }
}
