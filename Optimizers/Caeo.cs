using Curvature.Engine;
using Curvature.Spectral;
using Curvature.Kernels;

namespace Curvature.Optimizers;

/// <summary>How CAEO estimates λmax.</summary>
public enum CurvatureEstimator
{
    /// <summary>Power iteration on exact HVPs, warm-started from the last eigenvector.</summary>
    Power,
    /// <summary>
    /// The seed's Hutchinson-style estimate: the largest Rayleigh quotient vᵀHv/‖v‖² over random Rademacher
    /// probes. A random probe's quotient is a weighted average of all eigenvalues, so this underestimates λmax
    /// (often by a lot) and the step is correspondingly less conservative.
    /// </summary>
    Hutchinson,
    /// <summary>
    /// K-FAC: max over layers of λmax(A)·λmax(G), the top eigenvalue of the Kronecker-factored Fisher. The Fisher
    /// equals the Gauss-Newton matrix for cross-entropy, which matches the Hessian near a minimum but not in
    /// general, and K-FAC ignores the coupling between layers.
    /// </summary>
    Kfac,
    /// <summary>
    /// The batch sharpness of the step's own minibatch, g_Bᵀ H_B g_B / ‖g_B‖² (one HVP of the minibatch loss along
    /// its gradient; Andreyev and Beneventano 2024): the curvature SGD's step actually meets, which hovers at 2/η
    /// in the stochastic regime while the full-batch λmax stays below. For the Adam variant, the Rayleigh quotient
    /// of P^-½ H_B P^-½ along g_B.
    /// </summary>
    Batch,
}

/// <summary>
/// CAEO (Curvature-Adaptive Edge Optimization): every T steps estimate λmax of the loss Hessian on a probe
/// batch, and step with η = min(η_base, (2 − δ)/λmax), which keeps gradient descent below the Edge of
/// Stability (Cohen et al. 2021: GD drives λmax to 2/η). With heavy-ball momentum μ the stability limit is
/// (2 + 2μ)/η, so the momentum variant uses η = min(η_base, (2 + 2μ − δ)/λmax). With Adam the relevant quantity
/// is the preconditioned sharpness λmax(P⁻¹H), P = diag(√v̂ + ε), whose stability limit is (2 + 2β₁)/(1 − β₁)/η
/// (38/η for β₁ = 0.9; Cohen et al. 2022, "Adaptive gradient methods at the edge of stability"), so the Adam
/// variant uses η = min(η_base, ((2 + 2β₁)/(1 − β₁) − δ)/λmax(P⁻¹H)), estimated on the symmetric P^-½ H P^-½.
/// Power iteration finds the eigenvalue of largest magnitude, which can be negative (ResNet-20 in training mode at
/// initialization, where it once reset η to η_base while λmax was about 110): a continued estimate that is not
/// positive restarts power iteration from a random vector, and when the dominant eigenvalue is still negative the
/// probe runs Lanczos instead, whose top Ritz value is the algebraic λmax. A non-positive λmax (no direction of positive curvature) leaves η = η_base. The seed's
/// injected noise is an option: ξ ~ N(0, σ²) added to every weight after each step (<c>noise</c> σ, 0 by default).
/// When the step context asks for an audit, every <see cref="StepContext.AuditEvery"/>-th probe also runs Lanczos
/// to convergence on the same operator (<see cref="SharpnessAudit"/>), logged beside the estimate.
/// </summary>
public sealed class Caeo : IOptimizer
{
    private readonly OptimizerState state = new();
    private readonly Momentum? heavyBall;
    private readonly Adam? adam;
    private RandomGenerator rng;
    private NdArray? lastVector;

    /// <summary>A CAEO rule; <paramref name="momentum"/> 0 gives plain GD steps.</summary>
    public Caeo(double baseLearningRate, double delta = 0.5, int probeEvery = 10, CurvatureEstimator estimator = CurvatureEstimator.Power,
        double momentum = 0, int powerIterations = 20, double powerTolerance = 1e-3, int hutchinsonProbes = 10, ulong seed = 0, int warmIterations = 1,
        bool adaptive = false, double noise = 0)
    {
        if (adaptive && momentum > 0) throw new ArgumentException("caeo: choose heavy-ball momentum or the Adam variant, not both.");
        BaseLearningRate = Check.Positive(baseLearningRate, "caeo", "base learning rate");
        Delta = delta >= 0 && delta < 2 ? delta : throw new ArgumentOutOfRangeException(nameof(delta), delta, $"caeo: δ must lie in [0, 2), got {delta}.");
        ProbeEvery = probeEvery >= 1 ? probeEvery : throw new ArgumentOutOfRangeException(nameof(probeEvery), probeEvery, "caeo: probe-every must be at least 1.");
        Estimator = estimator;
        Beta = Check.Fraction(momentum, "caeo", "momentum");
        PowerIterations = powerIterations;
        WarmIterations = Math.Max(1, warmIterations);
        PowerTolerance = powerTolerance;
        HutchinsonProbes = hutchinsonProbes;
        Noise = Check.NonNegative(noise, "caeo", "noise σ");
        heavyBall = Beta > 0 ? new Momentum(BaseLearningRate, Beta) : null;
        adam = adaptive ? new Adam(BaseLearningRate) : null;
        rng = new RandomGenerator(seed);
        Last = new StepLog(BaseLearningRate, Beta, 0, null);
    }

    /// <summary>η_base.</summary>
    public double BaseLearningRate { get; }
    /// <summary>δ, the margin below the edge.</summary>
    public double Delta { get; }
    /// <summary>T, steps between probes.</summary>
    public int ProbeEvery { get; }
    /// <summary>The λmax estimator.</summary>
    public CurvatureEstimator Estimator { get; }
    /// <summary>Heavy-ball momentum μ (0: none).</summary>
    public double Beta { get; }
    /// <summary>Power-iteration budget per probe.</summary>
    public int PowerIterations { get; }
    /// <summary>
    /// Products per probe after the first (default 1): the first probe runs power iteration to its tolerance; each
    /// later one reports the Rayleigh quotient vᵀHv of the carried vector and advances it, v ← Hv/‖Hv‖, so power
    /// iteration continues across probes while the Hessian moves little in T steps. This keeps the probes a small
    /// share of the run; the estimate lags the true λmax by at most a few probes.
    /// </summary>
    public int WarmIterations { get; }
    /// <summary>Power-iteration relative tolerance.</summary>
    public double PowerTolerance { get; }
    /// <summary>Probes of the Hutchinson estimate.</summary>
    public int HutchinsonProbes { get; }
    /// <summary>σ of the noise added to every weight after each step (0: none).</summary>
    public double Noise { get; }

    /// <summary>The stability limit η·λmax of the base rule: 2 for GD, 2 + 2μ with momentum, (2 + 2β₁)/(1 − β₁) with Adam.</summary>
    public double StabilityLimit => adam is { } a ? StabilityEdge.Adam(a.Beta1) : StabilityEdge.HeavyBall(Beta);

    /// <summary>True for the Adam variant (preconditioned sharpness).</summary>
    public bool Adaptive => adam is not null;

    /// <summary>The latest λmax estimate (NaN before the first probe).</summary>
    public double Sharpness => state.Has("lambda_max") ? state["lambda_max"] : double.NaN;

    /// <inheritdoc/>
    public string Name => adam is not null ? "caeo-adam" : Beta > 0 ? "caeo-momentum" : "caeo";

    /// <inheritdoc/>
    public StepLog Last { get; private set; }

    /// <summary>η for a given λmax estimate.</summary>
    public double LearningRateFor(double lambdaMax) =>
        lambdaMax > 0 ? Math.Min(BaseLearningRate, (StabilityLimit - Delta) / lambdaMax) : BaseLearningRate;

    /// <inheritdoc/>
    public void Step(StepContext c)
    {
        Check.Gradients(c, Name);
        var directions = adam?.Directions(c);
        double? probed = null, audited = null;
        if (c.Step % ProbeEvery == 0 || !state.Has("lambda_max"))
        {
            probed = Check.FiniteCurvature(Estimate(c), c, Name);
            state["lambda_max"] = probed.Value;
            if (SharpnessAudit.Due(c, c.Step / ProbeEvery))
                audited = SharpnessAudit.Converged(Operator(c, c.AuditCurvature ?? c.Curvature), c.Step);
        }
        double eta = LearningRateFor(state["lambda_max"]);
        if (directions is not null)
            for (int i = 0; i < c.Parameters.Count; i++) c.Parameters[i].Data = c.Parameters[i].Data - directions[i] * eta;
        else if (heavyBall is null)
            for (int i = 0; i < c.Parameters.Count; i++) c.Parameters[i].Data = c.Parameters[i].Data - c.Gradients[i] * eta;
        else
        {
            heavyBall.LearningRate = eta;
            heavyBall.Step(c);
        }
        if (Noise > 0)
            foreach (var p in c.Parameters) p.Data = p.Data + rng.Normal(p.Data.Shape, 0, Noise, p.Data.DType, p.Data.Device);
        Last = new StepLog(eta, Beta, 0, probed, audited);
    }

    /// <summary>The operator whose λmax the rule bounds: H, or P^-½ H P^-½ for the Adam variant.</summary>
    private ILinearOperator Operator(StepContext c, Func<ILinearOperator>? curvature)
    {
        var op = curvature?.Invoke() ?? throw new InvalidOperationException($"{Name}: step {c.Step} needs the curvature but the step context has none.");
        if (adam is null) return op;
        // P^-½ H P^-½ has the eigenvalues of P⁻¹H and is symmetric.
        int n = c.Parameters.Count;
        var scale = Vectors.Flatten(Enumerable.Range(0, n).Select(i => adam.Preconditioner(i, n, c.Parameters[i].Data).Apply(Curvature.Kernels.UnaryOp.Sqrt).Apply(Curvature.Kernels.UnaryOp.Reciprocal)).ToArray());
        return new Preconditioned(op, scale);
    }

    private double Estimate(StepContext c)
    {
        if (Estimator == CurvatureEstimator.Kfac)
            return (c.Kfac?.Invoke(false, null) ?? throw new InvalidOperationException($"{Name}: step {c.Step} needs K-FAC factors but the step context has none.")).TopEigenvalue();
        if (Estimator == CurvatureEstimator.Batch)
        {
            var minibatch = Operator(c, c.MinibatchCurvature);
            var g = Vectors.Flatten(c.Gradients);
            double gg = g.Dot(g);
            return gg > 0 ? g.Dot(minibatch.Apply(g)) / gg : 0;
        }
        var op = Operator(c, c.Curvature);
        switch (Estimator)
        {
            case CurvatureEstimator.Power:
                if (lastVector is { } v && v.Size == op.Dimension)
                {
                    double rayleigh = double.NaN;
                    for (int i = 0; i < WarmIterations; i++)
                    {
                        var hv = op.Apply(v);
                        rayleigh = v.Dot(hv);
                        double norm = Vectors.Norm(hv);
                        if (norm > 0) v = hv * (1 / norm);
                    }
                    lastVector = v;
                    // A continued estimate that is not positive has lost the top of the spectrum: start again.
                    if (rayleigh > 0) return rayleigh;
                }
                var pair = PowerIteration.Run(op, PowerIterations, PowerTolerance, rng: rng);
                if (pair.Value <= 0)
                {
                    // The dominant eigenvalue is negative, so power iteration cannot see λmax. Power iteration on a
                    // shifted H − λ₋I would stop on its relative tolerance long before the small difference λmax
                    // emerges, so use Lanczos, which converges to the algebraic top from the same products.
                    var top = Lanczos.Run(op, Math.Max(PowerIterations, 20), k: 1, tolerance: PowerTolerance, rng: rng, vectors: true);
                    lastVector = top.Vectors![0];
                    return top.Values[0];
                }
                lastVector = pair.Vector;
                return pair.Value;
            default:
                double best = double.NegativeInfinity;
                for (int p = 0; p < HutchinsonProbes; p++)
                {
                    var z = rng.Rademacher(new Shape((int)op.Dimension), op.DType, op.Device);
                    best = Math.Max(best, z.Dot(op.Apply(z)) / op.Dimension);
                }
                return best;
        }
    }

    /// <summary>D·A·D for a diagonal D given as a vector.</summary>
    private sealed class Preconditioned(ILinearOperator inner, NdArray d) : ILinearOperator
    {
        public long Dimension => inner.Dimension;
        public DType DType => inner.DType;
        public Device Device => inner.Device;
        public NdArray Apply(NdArray v) => d * inner.Apply(d * v);
    }

    /// <inheritdoc/>
    public IReadOnlyList<(string Name, NdArray Value)> State()
    {
        state["rng_offset"] = rng.Offset;
        return Export();
    }

    private IOptimizer? Inner => (IOptimizer?)heavyBall ?? adam;

    private IReadOnlyList<(string Name, NdArray Value)> Export() =>
        [.. state.ExportWith(Inner), .. lastVector is null ? Array.Empty<(string, NdArray)>() : [("eigenvector", lastVector)]];

    /// <inheritdoc/>
    public void LoadState(IReadOnlyDictionary<string, NdArray> s)
    {
        state.ImportWith(s, Name, Inner, "eigenvector");
        lastVector = s.TryGetValue("eigenvector", out var v) ? v : null;
        rng = new RandomGenerator(rng.Seed, (ulong)state["rng_offset"]);
    }
}
