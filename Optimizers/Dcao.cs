using Curvature.Engine;
using Curvature.Spectral;

namespace Curvature.Optimizers;

/// <summary>
/// DCAO (Dynamic Curvature-Aware Optimizer): every T steps, Lanczos on exact HVPs gives the top-k Ritz values
/// λ₁…λ_k of the probe-batch Hessian; with the spectral radius ρ = max|λᵢ| and the spread γ = max|λᵢ − λⱼ| it
/// sets η = η₀·exp(−αρ), μ = μ₀·exp(−βγ), λ_wd = λ₀·exp(−c·ρ), and steps with heavy-ball momentum and
/// decoupled weight decay: w ← w(1 − η λ_wd), b ← μ b + g, w ← w − η b. High curvature means conservative
/// steps. ρ and γ carry the loss's units, so α, β, c depend on the problem's scale (the absolute mode, the seed's
/// literal rule). The relative mode uses ρ/ρ̄ and γ/γ̄ instead, where ρ̄ ← d·ρ̄ + (1 − d)·ρ is a running mean of the
/// probes that includes the current one (ρ̄ starts at the first probe): the ratio is unit-free and at most
/// 1/(1 − d), so η cannot underflow however far ρ grows from its value at initialization (dividing by the first
/// probe's ρ₀ drove η to 1e-193 on ResNet-20). The seed says a larger spectral gap "allows acceleration" while its
/// formula μ₀·exp(−βγ) shrinks μ as γ grows; <c>gapAccelerates</c> takes the words' reading, μ = μ₀·(1 − exp(−βγ)).
/// Every factor is bounded below by <c>floor</c> × its base (η ≥ floor·η₀ and likewise μ, λ_wd; 0 disables it).
/// The logged sharpness is ρ, and its audit a converged max|λ|.
/// </summary>
public sealed class Dcao : IOptimizer
{
    private readonly OptimizerState state = new();
    private RandomGenerator rng;

    /// <summary>A DCAO rule.</summary>
    public Dcao(double eta0, double mu0 = 0.9, double weightDecay0 = 0, double alpha = 0.01, double beta = 0.01, double c = 0.01,
        int probeEvery = 10, int k = 5, int lanczosIterations = 20, bool relative = false, ulong seed = 0,
        bool gapAccelerates = false, double floor = 0, double referenceDecay = 0.9)
    {
        Eta0 = Check.Positive(eta0, "dcao", "η₀");
        Mu0 = Check.Fraction(mu0, "dcao", "μ₀");
        WeightDecay0 = Check.NonNegative(weightDecay0, "dcao", "λ₀");
        Alpha = Check.NonNegative(alpha, "dcao", "α");
        Beta = Check.NonNegative(beta, "dcao", "β");
        C = Check.NonNegative(c, "dcao", "c");
        ProbeEvery = probeEvery >= 1 ? probeEvery : throw new ArgumentOutOfRangeException(nameof(probeEvery), probeEvery, "dcao: probe-every must be at least 1.");
        K = k >= 1 ? k : throw new ArgumentOutOfRangeException(nameof(k), k, "dcao: k must be at least 1.");
        LanczosIterations = Math.Max(lanczosIterations, k);
        Relative = relative;
        GapAccelerates = gapAccelerates;
        Floor = floor >= 0 && floor <= 1 ? floor : throw new ArgumentOutOfRangeException(nameof(floor), floor, $"dcao: the floor must lie in [0, 1], got {floor}.");
        ReferenceDecay = Check.Fraction(referenceDecay, "dcao", "reference decay");
        rng = new RandomGenerator(seed);
        Last = new StepLog(Eta0, Mu0, WeightDecay0, null);
    }

    /// <summary>η₀.</summary>
    public double Eta0 { get; }
    /// <summary>μ₀.</summary>
    public double Mu0 { get; }
    /// <summary>λ₀.</summary>
    public double WeightDecay0 { get; }
    /// <summary>α (η's sensitivity to ρ).</summary>
    public double Alpha { get; }
    /// <summary>β (μ's sensitivity to γ).</summary>
    public double Beta { get; }
    /// <summary>c (λ_wd's sensitivity to ρ).</summary>
    public double C { get; }
    /// <summary>T.</summary>
    public int ProbeEvery { get; }
    /// <summary>Ritz values used.</summary>
    public int K { get; }
    /// <summary>Lanczos iterations per probe.</summary>
    public int LanczosIterations { get; }
    /// <summary>Relative mode (ρ/ρ̄, γ/γ̄ against running means of the probes).</summary>
    public bool Relative { get; }
    /// <summary>μ = μ₀·(1 − exp(−βγ)) instead of μ₀·exp(−βγ).</summary>
    public bool GapAccelerates { get; }
    /// <summary>The smallest fraction of its base each factor may take (0: none).</summary>
    public double Floor { get; }
    /// <summary>d in the running means ρ̄ ← d·ρ̄ + (1 − d)·ρ of the relative mode.</summary>
    public double ReferenceDecay { get; }

    /// <inheritdoc/>
    public string Name => Relative ? "dcao-relative" : "dcao";

    /// <inheritdoc/>
    public StepLog Last { get; private set; }

    /// <summary>
    /// (η, μ, λ_wd) for the given Ritz values, with the ρ and γ the exponents used (ratios in relative mode, whose
    /// running means this call updates).
    /// </summary>
    public (double Eta, double Mu, double WeightDecay, double Rho, double Gamma) Schedule(IReadOnlyList<double> ritz)
    {
        double rho = ritz.Max(Math.Abs);
        double gamma = ritz.Max() - ritz.Min();
        if (Relative)
        {
            double d = ReferenceDecay;
            // The mean includes the current probe, so ρ/ρ̄ ≤ 1/(1 − d); a zero mean (a flat start) counts as 1.
            state["rho_ref"] = state.Has("rho_ref") ? d * state["rho_ref"] + (1 - d) * rho : rho;
            state["gamma_ref"] = state.Has("gamma_ref") ? d * state["gamma_ref"] + (1 - d) * gamma : gamma;
            rho /= state["rho_ref"] > 0 ? state["rho_ref"] : 1;
            gamma /= state["gamma_ref"] > 0 ? state["gamma_ref"] : 1;
        }
        double mu = GapAccelerates ? Mu0 * -double.ExpM1(-Beta * gamma) : Mu0 * Math.Exp(-Beta * gamma);
        return (Math.Max(Eta0 * Math.Exp(-Alpha * rho), Floor * Eta0), Math.Max(mu, Floor * Mu0),
            Math.Max(WeightDecay0 * Math.Exp(-C * rho), Floor * WeightDecay0), rho, gamma);
    }

    /// <inheritdoc/>
    public void Step(StepContext ctx)
    {
        Check.Gradients(ctx, Name);
        double? probed = null, audited = null;
        if (ctx.Step % ProbeEvery == 0 || !state.Has("eta"))
        {
            var op = Check.Curvature(ctx, Name);
            if (SharpnessAudit.Due(ctx, ctx.Step / ProbeEvery))
                audited = SharpnessAudit.Converged(ctx.AuditCurvature?.Invoke() ?? Check.Curvature(ctx, Name), ctx.Step, Which.LargestMagnitude);
            var r = Lanczos.Run(op, LanczosIterations, k: K, which: Which.LargestMagnitude, rng: rng);
            foreach (var v in r.Values) Check.FiniteCurvature(v, ctx, Name);
            var (eta, mu, wd, _, _) = Schedule(r.Values);
            state["eta"] = eta; state["mu"] = mu; state["wd"] = wd;
            probed = r.Values.Max(Math.Abs); // ρ, what the rule uses (the top-magnitude Ritz values can all be negative: ResNet-20 in training mode)
        }
        double e = state["eta"], m = state["mu"], lambda = state["wd"];
        int n = ctx.Parameters.Count;
        for (int i = 0; i < n; i++)
        {
            var w = ctx.Parameters[i].Data;
            if (lambda > 0) w = w * (1 - e * lambda);
            var b = state.Buffer("momentum", i, n, w) * m + ctx.Gradients[i];
            state.Set("momentum", i, b);
            ctx.Parameters[i].Data = w - b * e;
        }
        Last = new StepLog(e, m, lambda, probed, audited);
    }

    /// <inheritdoc/>
    public IReadOnlyList<(string Name, NdArray Value)> State()
    {
        state["rng_offset"] = rng.Offset;
        return state.Export();
    }

    /// <inheritdoc/>
    public void LoadState(IReadOnlyDictionary<string, NdArray> s)
    {
        state.Import(s, Name);
        rng = new RandomGenerator(rng.Seed, (ulong)state["rng_offset"]);
    }
}
