using Curvature.Engine;

namespace Curvature.Optimizers;

/// <summary>
/// Plain gradient descent, w ← w − η (∇L(w) + λ w) with optional coupled L2 weight decay λ: full-batch when
/// the gradient is over the whole training set (the setting of Cohen et al. 2021, where the sharpness rises to
/// 2/η), stochastic when it is over a minibatch.
/// </summary>
public sealed class GradientDescent : IHasLearningRate
{
    /// <summary>A rule with learning rate η and L2 coefficient λ.</summary>
    public GradientDescent(double learningRate, double weightDecay = 0)
    {
        LearningRate = Check.Positive(learningRate, "sgd", "learning rate");
        WeightDecay = Check.NonNegative(weightDecay, "sgd", "weight decay");
        Last = new StepLog(LearningRate, 0, WeightDecay, null);
    }

    /// <summary>η.</summary>
    public double LearningRate { get; set; }

    /// <summary>λ (coupled L2).</summary>
    public double WeightDecay { get; }

    /// <inheritdoc/>
    public string Name => "sgd";

    /// <inheritdoc/>
    public StepLog Last { get; private set; }

    /// <inheritdoc/>
    public void Step(StepContext c)
    {
        Check.Gradients(c, Name);
        for (int i = 0; i < c.Parameters.Count; i++)
        {
            // Linear combinations: one launch each on an accelerator, the same roundings as the ops written apart.
            var w = c.Parameters[i].Data;
            var g = WeightDecay > 0 ? NdArray.LinearCombination([c.Gradients[i], w], [1, WeightDecay]) : c.Gradients[i];
            c.Parameters[i].Data = NdArray.LinearCombination([w, g], [1, -LearningRate]);
        }
        Last = new StepLog(LearningRate, 0, WeightDecay, null);
    }

    /// <inheritdoc/>
    public IReadOnlyList<(string Name, NdArray Value)> State() => [];

    /// <inheritdoc/>
    public void LoadState(IReadOnlyDictionary<string, NdArray> state) { }
}
