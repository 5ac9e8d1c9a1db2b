using Curvature.Engine;

namespace Curvature.Optimizers;

/// <summary>
/// Heavy-ball momentum (Polyak 1964) in PyTorch's form: b ← μ b + g, w ← w − η b, with g = ∇L + λ w (coupled
/// L2); Nesterov's variant steps along g + μ b instead. Its stability limit on a quadratic is (2 + 2μ)/η.
/// </summary>
public sealed class Momentum : IOptimizer
{
    private readonly OptimizerState state = new();

    /// <summary>A rule with learning rate η, momentum μ, L2 coefficient λ.</summary>
    public Momentum(double learningRate, double momentum = 0.9, bool nesterov = false, double weightDecay = 0)
    {
        LearningRate = Check.Positive(learningRate, "momentum", "learning rate");
        Beta = Check.Fraction(momentum, "momentum", "momentum");
        WeightDecay = Check.NonNegative(weightDecay, "momentum", "weight decay");
        Nesterov = nesterov;
        Last = new StepLog(LearningRate, Beta, WeightDecay, null);
    }

    /// <summary>η (settable between steps: schedules and CAEO set it).</summary>
    public double LearningRate { get; set; }

    /// <summary>μ (settable between steps: DCAO sets it).</summary>
    public double Beta { get; set; }

    /// <summary>λ (coupled L2).</summary>
    public double WeightDecay { get; set; }

    /// <summary>Nesterov's variant.</summary>
    public bool Nesterov { get; }

    /// <inheritdoc/>
    public string Name => Nesterov ? "nesterov" : "momentum";

    /// <inheritdoc/>
    public StepLog Last { get; private set; }

    /// <inheritdoc/>
    public void Step(StepContext c)
    {
        Check.Gradients(c, Name);
        int n = c.Parameters.Count;
        for (int i = 0; i < n; i++)
        {
            var w = c.Parameters[i].Value;
            // Linear combinations: one launch each on an accelerator, the same roundings as the ops written apart.
            var g = WeightDecay > 0 ? NdArray.LinearCombination([c.Gradients[i], w], [1, WeightDecay]) : c.Gradients[i];
            var b = NdArray.LinearCombination([state.Buffer("momentum", i, n, w), g], [Beta, 1]);
            state.Set("momentum", i, b);
            c.Parameters[i].Value = Nesterov ? w - (g + b * Beta) * LearningRate : NdArray.LinearCombination([w, b], [1, -LearningRate]);
        }
        Last = new StepLog(LearningRate, Beta, WeightDecay, null);
    }

    /// <inheritdoc/>
    public IReadOnlyList<(string Name, NdArray Value)> State() => state.Export();

    /// <inheritdoc/>
    public void LoadState(IReadOnlyDictionary<string, NdArray> s) => state.Import(s, Name);
}
