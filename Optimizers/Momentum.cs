using Curvature.Engine;
using Curvature.Kernels;

namespace Curvature.Optimizers;

/// <summary>
/// Heavy-ball momentum (Polyak 1964) in PyTorch's form: b ← μ b + g, w ← w − η b, with g = ∇L + λ w (coupled
/// L2); Nesterov's variant steps along g + μ b instead. Its stability limit on a quadratic is (2 + 2μ)/η.
/// </summary>
public sealed class Momentum : IHasLearningRate
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
        var step = new MomentumStep { Momentum = Beta, L2 = WeightDecay, LearningRate = LearningRate, Nesterov = Nesterov ? 1 : 0 };
        for (int i = 0; i < n; i++)
        {
            var w = c.Parameters[i].Data;
            // Buffer and weights in one pass (one launch on an accelerator), rounded as the linear combinations
            // b = μb + (g + λw) and w − ηb written apart.
            var (b, stepped) = FusedUpdates.Momentum(w, c.Gradients[i], state.Buffer("momentum", i, n, w), step);
            state.Set("momentum", i, b);
            c.Parameters[i].Data = stepped;
        }
        Last = new StepLog(LearningRate, Beta, WeightDecay, null);
    }

    /// <inheritdoc/>
    public IReadOnlyList<(string Name, NdArray Value)> State() => state.Export();

    /// <inheritdoc/>
    public void LoadState(IReadOnlyDictionary<string, NdArray> s) => state.Import(s, Name);
}
