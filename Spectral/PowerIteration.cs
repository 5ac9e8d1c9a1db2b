using Curvature.Engine;

namespace Curvature.Spectral;

/// <summary>One eigenpair found by power iteration.</summary>
/// <param name="Value">The eigenvalue estimate (the Rayleigh quotient vᵀAv).</param>
/// <param name="Vector">The unit eigenvector estimate (a warm start for the next call).</param>
/// <param name="Iterations">Products A·v used.</param>
/// <param name="Residual">‖A v − λ v‖ at the end.</param>
public sealed record Eigenpair(double Value, NdArray Vector, int Iterations, double Residual);

/// <summary>
/// Power iteration v ← A v / ‖A v‖ for the eigenvalue of largest magnitude, with Hotelling deflation
/// (A − Σ λᵢ vᵢ vᵢᵀ) to find further ones, and a warm start from a previous eigenvector (CAEO re-probes λmax
/// every T steps from the last estimate, which converges in a few products when the Hessian moves slowly).
/// </summary>
public static class PowerIteration
{
    /// <summary>
    /// Iterates until |λ − λ_prev| ≤ tolerance·|λ| or the budget is spent. <paramref name="deflate"/> lists
    /// eigenpairs already found, projected out of every product.
    /// </summary>
    public static Eigenpair Run(ILinearOperator op, int maxIterations = 100, double tolerance = 1e-6, NdArray? start = null,
        IReadOnlyList<Eigenpair>? deflate = null, RandomGenerator? rng = null)
    {
        if (maxIterations < 1) throw new ArgumentOutOfRangeException(nameof(maxIterations), maxIterations, "power iteration needs at least one iteration.");
        var v = Vectors.Normalize(start ?? (rng ?? new RandomGenerator(0)).Normal(new Shape((int)op.Dimension), dtype: op.DType, device: op.Device));
        double lambda = double.NaN;
        NdArray av = Apply(op, v, deflate);
        int it = 1;
        for (; ; it++)
        {
            double next = v.Dot(av);
            bool done = !double.IsNaN(lambda) && Math.Abs(next - lambda) <= tolerance * Math.Abs(next);
            lambda = next;
            if (done || it >= maxIterations) break;
            double norm = Vectors.Norm(av);
            if (norm == 0) break;
            v = av * (1 / norm);
            av = Apply(op, v, deflate);
        }
        return new Eigenpair(lambda, v, it, Vectors.Norm(av - v * lambda));
    }

    /// <summary>The k eigenpairs of largest magnitude, one after another with deflation.</summary>
    public static Eigenpair[] Top(ILinearOperator op, int k, int maxIterations = 100, double tolerance = 1e-6, RandomGenerator? rng = null)
    {
        var found = new List<Eigenpair>();
        rng ??= new RandomGenerator(0);
        for (int i = 0; i < k; i++) found.Add(Run(op, maxIterations, tolerance, null, found, rng));
        return found.ToArray();
    }

    private static NdArray Apply(ILinearOperator op, NdArray v, IReadOnlyList<Eigenpair>? deflate)
    {
        var av = op.Apply(v);
        if (deflate is not null)
            foreach (var p in deflate) av = av - p.Vector * (p.Value * p.Vector.Dot(v));
        return av;
    }
}
