using Curvature.Engine;
using Curvature.Spectral;

namespace Curvature.Optimizers;

/// <summary>
/// DCAO (Dynamic Curvature-Aware Optimizer): every T steps, Lanczos on exact HVPs gives the top-k Ritz values
/// λ₁…λ_k of the probe-batch Hessian; with the spectral radius ρ = max|λᵢ| and the spread γ = max|λᵢ − λⱼ| it
/// sets η = η₀·exp(−αρ), μ = μ₀·exp(−βγ), λ_wd = λ₀·exp(−c·ρ), and steps with heavy-ball momentum and
/// decoupled weight decay: w ← w(1 − η λ_wd), b ← μ b + g, w ← w − η b. High curvature means conservative
/// steps. ρ and γ carry the loss's units, so α, β, c depend on the problem's scale; the relative mode uses
/// ρ/ρ₀ and γ/γ₀ instead, with ρ₀ and γ₀ from the first probe, which makes α, β, c unit-free.
/// </summary>
public sealed class Dcao : IOptimizer
{
    private readonly OptimizerState state = new();
    private RandomGenerator rng;

    /// <summary>A DCAO rule.</summary>
    public Dcao(double eta0, double mu0 = 0.9, double weightDecay0 = 0, double alpha = 0.01, double beta = 0.01, double c = 0.01,
        int probeEvery = 10, int k = 5, int lanczosIterations = 20, bool relative = false, ulong seed = 0)
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
    /// <summary>Relative mode (ρ/ρ₀, γ/γ₀).</summary>
    public bool Relative { get; }

    /// <inheritdoc/>
    public string Name => Relative ? "dcao-relative" : "dcao";

    /// <inheritdoc/>
    public StepLog Last { get; private set; }

    /// <summary>(η, μ, λ_wd) for the given Ritz values, updating ρ₀ and γ₀ on the first call in relative mode.</summary>
    public (double Eta, double Mu, double WeightDecay, double Rho, double Gamma) Schedule(IReadOnlyList<double> ritz)
    {
        double rho = ritz.Max(Math.Abs);
        double gamma = ritz.Max() - ritz.Min();
        if (Relative)
        {
            if (!state.Has("rho0")) { state["rho0"] = rho > 0 ? rho : 1; state["gamma0"] = gamma > 0 ? gamma : 1; }
            rho /= state["rho0"];
            gamma /= state["gamma0"];
        }
        return (Eta0 * Math.Exp(-Alpha * rho), Mu0 * Math.Exp(-Beta * gamma), WeightDecay0 * Math.Exp(-C * rho), rho, gamma);
    }

    /// <inheritdoc/>
    public void Step(StepContext ctx)
    {
        Check.Gradients(ctx, Name);
        double? probed = null;
        if (ctx.Step % ProbeEvery == 0 || !state.Has("eta"))
        {
            var op = Check.Curvature(ctx, Name);
            var r = Lanczos.Run(op, LanczosIterations, k: K, which: Which.LargestMagnitude, rng: rng);
            foreach (var v in r.Values) Check.FiniteCurvature(v, ctx, Name);
            var (eta, mu, wd, _, _) = Schedule(r.Values);
            state["eta"] = eta; state["mu"] = mu; state["wd"] = wd;
            probed = r.Values.Max();
        }
        double e = state["eta"], m = state["mu"], lambda = state["wd"];
        int n = ctx.Parameters.Count;
        for (int i = 0; i < n; i++)
        {
            var w = ctx.Parameters[i].Value;
            if (lambda > 0) w = w * (1 - e * lambda);
            var b = state.Buffer("momentum", i, n, w) * m + ctx.Gradients[i];
            state.Set("momentum", i, b);
            ctx.Parameters[i].Value = w - b * e;
        }
        Last = new StepLog(e, m, lambda, probed);
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
