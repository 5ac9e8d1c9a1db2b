using Curvature.Engine;

namespace Curvature.Spectral;

/// <summary>
/// Hutch++ (Meyer, Musco, Musco and Woodruff, "Hutch++: Optimal Stochastic Trace Estimation", SOSA 2021,
/// Algorithm 1): of a budget of m products, m/3 sketch the range, Q = orth(A·S) for a Rademacher S; m/3 give
/// tr(QᵀAQ) exactly; the last m/3 are Hutchinson's estimator on the deflated operator (I − QQᵀ)A(I − QQᵀ):
/// tr(A) ≈ tr(QᵀAQ) + (3/m)·Σ gᵀ(I − QQᵀ)A(I − QQᵀ)g. Unbiased; its error falls as 1/m instead of 1/√m for
/// operators whose spectrum decays (a Hessian's does), and it is exact when A has rank ≤ m/3.
/// </summary>
public static class HutchPlusPlus
{
    /// <summary>The smallest budget: one sketch, one exact and one residual product.</summary>
    public const int MinimumBudget = 3;

    /// <summary>
    /// The trace estimate from <paramref name="budget"/> products (a multiple of 3). Its standard error is that of
    /// the residual part over its m/3 probes, given the sketch (the sketched part has no sampling error of its own).
    /// </summary>
    public static Estimate Trace(ILinearOperator op, int budget, RandomGenerator rng)
    {
        if (budget < MinimumBudget || budget % 3 != 0)
            throw new ArgumentOutOfRangeException(nameof(budget), budget, $"Hutch++ needs a budget that is a multiple of 3 and at least {MinimumBudget} products.");
        int s = budget / 3;
        var shape = new Shape((int)op.Dimension);
        // Q: an orthonormal basis of A·S, by classical Gram-Schmidt twice ("twice is enough"); columns of A·S that
        // are dependent on earlier ones (a rank below s) are dropped.
        var q = new List<NdArray>();
        double scale = 0;
        for (int i = 0; i < s; i++)
        {
            var w = op.Apply(rng.Rademacher(shape, op.DType, op.Device));
            double norm0 = Vectors.Norm(w);
            scale = Math.Max(scale, norm0);
            for (int pass = 0; pass < 2 && q.Count > 0; pass++) w = w - NdArray.LinearCombination(q, NdArray.Dots(q, w));
            double norm = Vectors.Norm(w);
            if (norm > 1e-6 * scale && norm > 0) q.Add(w * (1 / norm));
        }
        double sketched = 0;
        foreach (var qi in q) sketched += qi.Dot(op.Apply(qi));
        // The dropped columns' products are not spent: the budget's first third bought the sketch either way.
        var samples = new double[s];
        for (int i = 0; i < s; i++)
        {
            var g = rng.Rademacher(shape, op.DType, op.Device);
            if (q.Count > 0) g = g - NdArray.LinearCombination(q, NdArray.Dots(q, g));
            var ag = op.Apply(g);
            samples[i] = g.Dot(ag);
        }
        var residual = Hutchinson.Summarize(samples);
        return new Estimate(sketched + residual.Value, residual.StandardError, budget);
    }
}
