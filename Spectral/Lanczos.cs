using Curvature.Engine;

namespace Curvature.Spectral;

/// <summary>Which end of the spectrum to report.</summary>
public enum Which
{
    /// <summary>The k largest algebraic eigenvalues, descending.</summary>
    LargestAlgebraic,
    /// <summary>The k eigenvalues of largest magnitude, by descending |λ|.</summary>
    LargestMagnitude,
}

/// <summary>What a Lanczos run found.</summary>
/// <param name="Values">The k requested Ritz values (float64), in the order <see cref="Which"/> gives.</param>
/// <param name="Vectors">Their Ritz vectors (unit norm, operator dtype), or null when not asked for.</param>
/// <param name="Residuals">Residual norms ‖A y − θ y‖ of the Ritz pairs, from β_m·|s_m| (exact in exact arithmetic).</param>
/// <param name="Iterations">Lanczos steps taken (≤ the budget; fewer on convergence or an invariant subspace).</param>
/// <param name="Alpha">Diagonal of the tridiagonal T.</param>
/// <param name="Beta">Off-diagonal of T (length Iterations − 1).</param>
/// <param name="AllValues">Every Ritz value of T, ascending.</param>
/// <param name="FirstComponents">First components of T's normalized eigenvectors, in the order of <paramref name="AllValues"/> (SLQ weights are their squares).</param>
public sealed record LanczosResult(double[] Values, NdArray[]? Vectors, double[] Residuals, int Iterations,
    double[] Alpha, double[] Beta, double[] AllValues, double[] FirstComponents);

/// <summary>
/// The Lanczos method with full reorthogonalization (Golub and Van Loan, Matrix Computations, §10.1): builds an
/// orthonormal Krylov basis q₁…q_m and the tridiagonal T = QᵀAQ, whose eigenvalues (Ritz values) approximate the
/// extreme eigenvalues of A. Every new vector is orthogonalized twice against the whole basis ("twice is
/// enough", Kahan–Parlett), so no spurious copies of converged eigenvalues appear. T is solved in float64.
/// </summary>
public static class Lanczos
{
    /// <summary>
    /// Runs at most <paramref name="iterations"/> steps from <paramref name="start"/> (a random normal
    /// vector when null). Stops early when the k wanted Ritz pairs have residuals ≤ tolerance·max(1, |θ|), or
    /// when the Krylov space becomes invariant.
    /// </summary>
    public static LanczosResult Run(ILinearOperator op, int iterations, int k = 1, Which which = Which.LargestAlgebraic,
        double tolerance = 0, NdArray? start = null, RandomGenerator? rng = null, bool vectors = false)
    {
        long n = op.Dimension;
        if (iterations < 1) throw new ArgumentOutOfRangeException(nameof(iterations), iterations, "Lanczos needs at least one iteration.");
        if (k < 1) throw new ArgumentOutOfRangeException(nameof(k), k, "Lanczos: k must be at least 1.");
        int m = (int)Math.Min(iterations, n);
        var q = Vectors.Normalize(start ?? (rng ?? new RandomGenerator(0)).Normal(new Shape((int)n), dtype: op.DType, device: op.Device));
        if (q.Shape != new Shape((int)n)) throw new ArgumentException($"Lanczos: the start vector has shape {q.Shape}; expected [{n}].");

        var basis = new List<NdArray> { q };
        var alpha = new List<double>();
        var beta = new List<double>();
        double residualBeta = 0;
        for (int j = 0; j < m; j++)
        {
            var w = op.Apply(basis[j]);
            double a = basis[j].Dot(w);
            alpha.Add(a);
            w = j == 0 ? w - basis[0] * a : w - NdArray.LinearCombination([basis[j], basis[j - 1]], [a, beta[j - 1]]);
            // Classical Gram-Schmidt against the whole basis, twice ("twice is enough"): the coefficients
            // first, then one fused pass w − Σ (qᵢ·w) qᵢ.
            for (int pass = 0; pass < 2; pass++)
                w = w - NdArray.LinearCombination(basis, NdArray.Dots(basis, w));
            double b = Vectors.Norm(w);
            residualBeta = b;
            bool last = j == m - 1;
            bool invariant = b <= 1e-10 * Math.Max(1, alpha.Max(Math.Abs));
            if (!last && !invariant && tolerance > 0 && j + 1 >= k && Converged(alpha, beta, b, k, which, tolerance)) { residualBeta = b; break; }
            if (last || invariant) break;
            beta.Add(b);
            basis.Add(w * (1 / b));
        }
        return Finish(basis, alpha, beta, residualBeta, k, which, vectors);
    }

    private static bool Converged(List<double> alpha, List<double> beta, double b, int k, Which which, double tol)
    {
        var (values, s) = SymmetricTridiagonal.Decompose(alpha, beta);
        int mm = values.Length;
        foreach (int i in Pick(values, k, which))
            if (b * Math.Abs(s[mm - 1, i]) > tol * Math.Max(1, Math.Abs(values[i]))) return false;
        return true;
    }

    private static int[] Pick(double[] ascending, int k, Which which)
    {
        var idx = Enumerable.Range(0, ascending.Length);
        var ordered = which == Which.LargestAlgebraic
            ? idx.OrderByDescending(i => ascending[i])
            : idx.OrderByDescending(i => Math.Abs(ascending[i]));
        return ordered.Take(Math.Min(k, ascending.Length)).ToArray();
    }

    private static LanczosResult Finish(List<NdArray> basis, List<double> alpha, List<double> beta, double residualBeta, int k, Which which, bool wantVectors)
    {
        int mm = alpha.Count;
        var (values, s) = SymmetricTridiagonal.Decompose(alpha, beta);
        var picked = Pick(values, k, which);
        var residuals = picked.Select(i => residualBeta * Math.Abs(s[mm - 1, i])).ToArray();
        NdArray[]? ritz = null;
        if (wantVectors)
        {
            ritz = new NdArray[picked.Length];
            for (int r = 0; r < picked.Length; r++)
            {
                int column = picked[r];
                ritz[r] = Vectors.Normalize(NdArray.LinearCombination(basis, Enumerable.Range(0, mm).Select(j => s[j, column]).ToArray()));
            }
        }
        var first = Enumerable.Range(0, mm).Select(i => s[0, i]).ToArray();
        return new LanczosResult(picked.Select(i => values[i]).ToArray(), ritz, residuals, mm, alpha.ToArray(), beta.ToArray(), values, first);
    }
}
