namespace Curvature.Spectral;

/// <summary>
/// Eigenvalues and eigenvectors of a real symmetric tridiagonal matrix by the implicit QL algorithm with
/// Wilkinson shifts (EISPACK tql2; Bowdler, Martin, Reinsch and Wilkinson 1968). All eigenvalues are real by
/// construction, unlike a general eigen-solver applied to the Lanczos tridiagonal.
/// </summary>
public static class SymmetricTridiagonal
{
    /// <summary>
    /// Decomposes T with diagonal <paramref name="diagonal"/> (length m) and off-diagonal
    /// <paramref name="offDiagonal"/> (length m−1). Returns the eigenvalues ascending and the eigenvectors
    /// as columns of an m×m matrix (vectors[i, j] = component i of eigenvector j).
    /// </summary>
    public static (double[] Values, double[,] Vectors) Decompose(IReadOnlyList<double> diagonal, IReadOnlyList<double> offDiagonal)
    {
        int n = diagonal.Count;
        if (offDiagonal.Count != Math.Max(0, n - 1)) throw new ArgumentException($"tridiagonal: {n} diagonal entries need {n - 1} off-diagonal ones, got {offDiagonal.Count}.");
        var d = diagonal.ToArray();
        var e = new double[n];
        for (int i = 0; i < n - 1; i++) e[i] = offDiagonal[i];
        var rows = new double[n * n];
        for (int i = 0; i < n; i++) rows[i * n + i] = 1;
        Diagonalize(d, e, rows, n);
        // Sort ascending, carrying the vectors.
        var order = Enumerable.Range(0, n).OrderBy(i => d[i]).ToArray();
        var values = order.Select(i => d[i]).ToArray();
        var vectors = new double[n, n];
        for (int j = 0; j < n; j++)
            for (int k = 0; k < n; k++) vectors[k, j] = rows[order[j] * n + k];
        return (values, vectors);
    }

    /// <summary>
    /// The QL iteration in place: <paramref name="d"/> (n) the diagonal, <paramref name="e"/> (n) the off-diagonal
    /// (e[i] couples i and i+1, e[n−1] unused), left as the eigenvalues (unsorted) and zeros. Each rotation of
    /// entries i, i+1 is applied to rows i, i+1 of <paramref name="rows"/> (row-major n×n, contiguous rows): from the
    /// identity the rows end as T's eigenvectors; from Qᵀ of a reduction M = Q T Qᵀ, as M's.
    /// </summary>
    internal static void Diagonalize(double[] d, double[] e, double[] rows, int n)
    {
        if (n > 0) e[n - 1] = 0;
        // An off-diagonal entry is negligible against its neighbours (relative accuracy where the local scale allows
        // it) or against the matrix's norm (as LAPACK's steqr splits): without the second test a block of near-zero
        // entries (a saturated layer's output-gradient factor, entries near 1e-31 beside 0.04) can cycle without deflating.
        double norm = 0;
        for (int i = 0; i < n; i++) norm = Math.Max(norm, Math.Abs(d[i]) + Math.Abs(e[i]));
        for (int l = 0; l < n; l++)
        {
            int iterations = 0;
            while (true)
            {
                int m = l;
                for (; m < n - 1; m++)
                {
                    double dd = Math.Abs(d[m]) + Math.Abs(d[m + 1]);
                    if (Math.Abs(e[m]) <= 1e-15 * dd || Math.Abs(e[m]) <= Epsilon * norm) break;
                }
                if (m == l) break;
                if (++iterations > 60) throw new InvalidOperationException("tridiagonal QL did not converge in 60 iterations.");
                double g = (d[l + 1] - d[l]) / (2 * e[l]);
                double r = Hypot(g, 1);
                g = d[m] - d[l] + e[l] / (g + (g >= 0 ? r : -r));
                double s = 1, c = 1, p = 0;
                int i = m - 1;
                for (; i >= l; i--)
                {
                    double f = s * e[i], b = c * e[i];
                    r = Hypot(f, g);
                    e[i + 1] = r;
                    if (r == 0)
                    {
                        d[i + 1] -= p;
                        e[m] = 0;
                        break;
                    }
                    s = f / r; c = g / r;
                    g = d[i + 1] - p;
                    r = (d[i] - g) * s + 2 * c * b;
                    p = s * r;
                    d[i + 1] = g + p;
                    g = c * r - b;
                    var lower = rows.AsSpan(i * n, n);
                    var upper = rows.AsSpan((i + 1) * n, n);
                    for (int k = 0; k < n; k++)
                    {
                        f = upper[k];
                        upper[k] = s * lower[k] + c * f;
                        lower[k] = c * lower[k] - s * f;
                    }
                }
                if (r == 0 && i >= l) continue;
                d[l] -= p;
                e[l] = g;
                e[m] = 0;
            }
        }
    }

    private const double Epsilon = 2.220446049250313e-16;   // 2⁻⁵²

    // √(a² + b²) without underflow: squares of entries below 1e-154 vanish, a zero r would stall the QL sweep.
    private static double Hypot(double a, double b)
    {
        double x = Math.Abs(a), y = Math.Abs(b);
        if (x < y) (x, y) = (y, x);
        if (x == 0) return 0;
        double r = y / x;
        return x * Math.Sqrt(1 + r * r);
    }
}
