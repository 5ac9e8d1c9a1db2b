using Curvature.Engine;

namespace Curvature.Optimizers;

/// <summary>
/// L4 (Rolinek and Martius 2018, "L4: Practical loss-based stepsize adaptation for deep learning"): a base rule
/// gives the direction v (Adam with ε = 1e-4, or heavy-ball momentum); ĝ is the bias-corrected moving average
/// of the gradient (β = 0.9); the step is η = α·(L − γ·L_min)/(ĝ·v + 1e-12), aiming to remove a fraction α of
/// the gap to the estimated minimum. L_min starts at 0.75·L₀, is lowered to L each step, and after the step is
/// multiplied by (1 + 1/τ). Defaults α = 0.15, γ = 0.9, τ = 1000. The rescaling of v cancels in η·v. L4 needs a
/// non-negative loss and refuses any other.
/// </summary>
public sealed class L4 : IOptimizer
{
    private readonly OptimizerState state = new();
    private readonly Func<StepContext, NdArray[]> direction;
    private readonly IOptimizer? baseRule;

    /// <summary>L4 over Adam (ε = 1e-4) or heavy-ball momentum ("adam" or "momentum").</summary>
    public L4(string direction = "adam", double alpha = 0.15, double gamma = 0.9, double tau = 1000, double momentum = 0.9)
        : this(DirectionOf(direction, momentum, out var rule), alpha, gamma, tau, $"l4-{direction}") => baseRule = rule;

    /// <summary>L4 over any direction rule (the directions must be descent directions: ĝ·v &gt; 0).</summary>
    public L4(Func<StepContext, NdArray[]> direction, double alpha = 0.15, double gamma = 0.9, double tau = 1000, string name = "l4")
    {
        this.direction = direction;
        Alpha = Check.Positive(alpha, "l4", "alpha");
        Gamma = Check.Fraction(gamma, "l4", "gamma");
        Tau = Check.Positive(tau, "l4", "tau");
        Name = name;
        Last = new StepLog(0, 0, 0, null);
    }

    private static Func<StepContext, NdArray[]> DirectionOf(string kind, double momentum, out IOptimizer rule)
    {
        switch (kind)
        {
            case "adam":
                var adam = new Adam(1, epsilon: 1e-4);
                rule = adam;
                return adam.Directions;
            case "momentum":
                var heavy = new HeavyBallDirection(momentum);
                rule = heavy;
                return heavy.Directions;
            default:
                throw new ArgumentException($"l4: direction '{kind}' is not one of adam, momentum.");
        }
    }

    /// <summary>α: the fraction of the gap removed per step.</summary>
    public double Alpha { get; }
    /// <summary>γ: how close to L_min the rule aims.</summary>
    public double Gamma { get; }
    /// <summary>τ: how fast L_min forgets.</summary>
    public double Tau { get; }

    /// <inheritdoc/>
    public string Name { get; }

    /// <inheritdoc/>
    public StepLog Last { get; private set; }

    /// <summary>The current estimate of the minimal loss.</summary>
    public double MinimumLoss => state["lmin"];

    /// <inheritdoc/>
    public void Step(StepContext c)
    {
        Check.Gradients(c, Name);
        if (c.Loss < 0) throw new ArgumentOutOfRangeException(nameof(c), c.Loss, $"{Name}: the loss at step {c.Step} is {c.Loss}; L4 needs a non-negative loss.");
        int n = c.Parameters.Count;
        var v = direction(c);
        double t = state["t"] + 1;
        state["t"] = t;
        double dot = 0;
        for (int i = 0; i < n; i++)
        {
            var gAvg = state.Buffer("grad_avg", i, n, c.Gradients[i]) * 0.9 + c.Gradients[i] * 0.1;
            state.Set("grad_avg", i, gAvg);
            dot += gAvg.Dot(v[i]) / (1 - Math.Pow(0.9, t));
        }
        state["lmin"] = Math.Min(state.Has("lmin") ? state["lmin"] : 0.75 * c.Loss, c.Loss);
        double eta = Alpha * (c.Loss - Gamma * state["lmin"]) / (dot + 1e-12);
        if (!double.IsFinite(eta)) throw new ArithmeticException($"{Name}: the step size at step {c.Step} is {eta}; stopping.");
        for (int i = 0; i < n; i++) c.Parameters[i].Data = c.Parameters[i].Data - v[i] * eta;
        state["lmin"] *= 1 + 1 / Tau;
        Last = new StepLog(eta, 0, 0, null);
    }

    /// <inheritdoc/>
    public IReadOnlyList<(string Name, NdArray Value)> State() => state.ExportWith(baseRule);

    /// <inheritdoc/>
    public void LoadState(IReadOnlyDictionary<string, NdArray> s) => state.ImportWith(s, Name, baseRule);

    /// <summary>The heavy-ball buffer b ← μ b + g as a direction (no step of its own).</summary>
    private sealed class HeavyBallDirection(double momentum) : IOptimizer
    {
        private readonly OptimizerState state = new();
        public string Name => "momentum-direction";
        public StepLog Last => new(0, momentum, 0, null);
        public NdArray[] Directions(StepContext c)
        {
            int n = c.Parameters.Count;
            var d = new NdArray[n];
            for (int i = 0; i < n; i++)
            {
                d[i] = state.Buffer("momentum", i, n, c.Gradients[i]) * momentum + c.Gradients[i];
                state.Set("momentum", i, d[i]);
            }
            return d;
        }
        public void Step(StepContext c) => throw new InvalidOperationException("a direction rule does not step.");
        public IReadOnlyList<(string Name, NdArray Value)> State() => state.Export();
        public void LoadState(IReadOnlyDictionary<string, NdArray> s) => state.Import(s, Name);
    }
}
