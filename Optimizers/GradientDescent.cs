using Curvature.Engine;
using Curvature.Models;

namespace Curvature.Optimizers;

/// <summary>
/// Plain gradient descent, w ← w − η ∇L(w): full-batch when the gradient is over the whole training set (the
/// setting of Cohen et al. 2021, where the sharpness rises to 2/η), stochastic when it is over a minibatch.
/// </summary>
public sealed class GradientDescent(double learningRate) : IOptimizer
{
    /// <inheritdoc/>
    public string Name => "sgd";

    /// <inheritdoc/>
    public double LearningRate { get; set; } = learningRate > 0 ? learningRate
        : throw new ArgumentOutOfRangeException(nameof(learningRate), learningRate, "the learning rate must be positive.");

    /// <inheritdoc/>
    public void Step(IReadOnlyList<Parameter> parameters, IReadOnlyList<NdArray> gradients)
    {
        if (parameters.Count != gradients.Count) throw new ArgumentException($"sgd: {parameters.Count} parameters but {gradients.Count} gradients.");
        for (int i = 0; i < parameters.Count; i++)
        {
            if (parameters[i].Shape != gradients[i].Shape)
                throw new ArgumentException($"sgd: parameter {i} has shape {parameters[i].Shape} but its gradient {gradients[i].Shape}.");
            parameters[i].Value = parameters[i].Value - gradients[i] * LearningRate;
        }
    }
}
