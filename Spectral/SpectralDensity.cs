using Curvature.Engine;

namespace Curvature.Spectral;

/// <summary>A spectral density on a grid: density[i] at grid[i]; integrates to about 1.</summary>
/// <param name="Grid">Evaluation points, ascending and equally spaced.</param>
/// <param name="Density">φ(grid[i]).</param>
/// <param name="Nodes">Quadrature nodes (Ritz values) of every probe.</param>
/// <param name="Weights">Their weights (squared first components of the Ritz vectors), divided by the number of probes.</param>
/// <param name="Sigma">The Gaussian broadening width σ (0 when unknown).</param>
public sealed record SpectralDensity(double[] Grid, double[] Density, double[] Nodes, double[] Weights, double Sigma = 0)
{
    /// <summary>∫φ by the trapezoid rule on the grid.</summary>
    public double Integral()
    {
        double s = 0;
        for (int i = 1; i < Grid.Length; i++) s += 0.5 * (Density[i] + Density[i - 1]) * (Grid[i] - Grid[i - 1]);
        return s;
    }
}

/// <summary>
/// Stochastic Lanczos quadrature (Ubaru, Chen and Saad 2017; Ghorbani, Krishnan and Xiao 2019): for each
/// Rademacher probe, m Lanczos steps give T = S Θ Sᵀ; the nodes are the Ritz values θⱼ and the weights the
/// squared first components S₀ⱼ², averaged over probes; the density is that discrete measure broadened by a
/// Gaussian of width σ: φ(t) = (1/probes) Σ Σⱼ S₀ⱼ² 𝒩(t; θⱼ, σ²). The Ritz values come from the symmetric
/// tridiagonal solver, so they are real.
/// </summary>
public static class StochasticLanczosQuadrature
{
    /// <summary>
    /// The density from <paramref name="probes"/> probes of <paramref name="iterations"/> steps on a grid of
    /// <paramref name="gridPoints"/> points spanning the nodes with a margin; σ defaults to 1% of that span.
    /// </summary>
    public static SpectralDensity Run(ILinearOperator op, int iterations, int probes, RandomGenerator rng,
        int gridPoints = 200, double? sigma = null)
    {
        if (probes < 1) throw new ArgumentOutOfRangeException(nameof(probes), probes, "SLQ needs at least one probe.");
        return FromRuns(Probe(op, iterations, probes, rng), gridPoints, sigma);
    }

    /// <summary>Lanczos runs of <paramref name="iterations"/> steps from fresh Rademacher probes.</summary>
    public static LanczosResult[] Probe(ILinearOperator op, int iterations, int probes, RandomGenerator rng) =>
        Enumerable.Range(0, probes)
            .Select(_ => Lanczos.Run(op, iterations, k: 1, start: rng.Rademacher(new Shape((int)op.Dimension), op.DType, op.Device)))
            .ToArray();

    /// <summary>The density from Lanczos runs started at Rademacher probes (any number of steps each).</summary>
    public static SpectralDensity FromRuns(IReadOnlyList<LanczosResult> runs, int gridPoints = 200, double? sigma = null)
    {
        if (runs.Count == 0) throw new ArgumentException("SLQ needs at least one Lanczos run.");
        if (gridPoints < 2) throw new ArgumentOutOfRangeException(nameof(gridPoints), gridPoints, "SLQ needs at least two grid points.");
        var nodes = new List<double>();
        var weights = new List<double>();
        foreach (var r in runs)
            for (int j = 0; j < r.AllValues.Length; j++)
            {
                nodes.Add(r.AllValues[j]);
                weights.Add(r.FirstComponents[j] * r.FirstComponents[j] / runs.Count);
            }
        double lo = nodes.Min(), hi = nodes.Max();
        double span = Math.Max(hi - lo, 1e-12 * Math.Max(1, Math.Abs(hi)));
        double s = sigma ?? 0.01 * span;
        if (!(s > 0)) throw new ArgumentOutOfRangeException(nameof(sigma), s, "SLQ: the broadening width must be positive.");
        double a = lo - 5 * s, b = hi + 5 * s;
        var grid = Enumerable.Range(0, gridPoints).Select(i => a + (b - a) * i / (gridPoints - 1)).ToArray();
        var density = new double[gridPoints];
        double norm = 1 / (s * Math.Sqrt(2 * Math.PI));
        for (int i = 0; i < gridPoints; i++)
            for (int j = 0; j < nodes.Count; j++)
            {
                double d = (grid[i] - nodes[j]) / s;
                density[i] += weights[j] * norm * Math.Exp(-0.5 * d * d);
            }
        return new SpectralDensity(grid, density, nodes.ToArray(), weights.ToArray(), s);
    }
}
