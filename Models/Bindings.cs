using Curvature.Autodiff;

namespace Curvature.Models;

/// <summary>
/// What a forward pass reads its parameters from: each <see cref="Parameter"/> bound to a differentiable
/// <see cref="Tensor"/> (so a loss is a function of the parameter tensors that Grad and Hvp can differentiate),
/// and whether the pass is in training mode. A parameter used twice (weight tying) is one binding.
/// </summary>
public sealed class Bindings
{
    private readonly Dictionary<Parameter, Tensor> values = new(ReferenceEqualityComparer.Instance);

    /// <summary>Binds <paramref name="parameters"/>[i] to <paramref name="tensors"/>[i].</summary>
    public Bindings(IReadOnlyList<Parameter> parameters, IReadOnlyList<Tensor> tensors, bool training)
    {
        if (parameters.Count != tensors.Count) throw new ArgumentException($"bindings: {parameters.Count} parameters but {tensors.Count} tensors.");
        for (int i = 0; i < parameters.Count; i++)
        {
            if (parameters[i].Shape != tensors[i].Shape)
                throw new ArgumentException($"bindings: parameter {i} has shape {parameters[i].Shape} but its tensor has shape {tensors[i].Shape}.");
            values[parameters[i]] = tensors[i];
        }
        Training = training;
    }

    /// <summary>Binds every parameter to its current value as a constant.</summary>
    public static Bindings Constant(Module module, bool training)
    {
        var ps = module.Parameters();
        return new Bindings(ps, ps.Select(p => (Tensor)p.Data).ToArray(), training);
    }

    /// <summary>
    /// An optional hook on layers that support it: called with the layer, its input (Linear: flattened to rows;
    /// Conv2d: [N, C, H, W]; Embedding: the ids; BatchNorm2d and LayerNorm: the normalized input x̂, their output being
    /// γ·x̂ + β before any residual or ReLU) and its output, and returning the output to use. KFAC records inputs and
    /// adds zero perturbations here, whose gradients are the per-example output gradients. A GPT under a hook looks up
    /// its positions once per example, so their embedding's output gradients are per example too.
    /// </summary>
    public Func<Module, Tensor, Tensor, Tensor>? Tap { get; init; }

    /// <summary>
    /// Whether this forward pass updates running statistics (BatchNorm's running mean and variance). Off by
    /// default: a loss evaluated for an HVP or a curvature probe must not change the model; the training step
    /// turns it on for its own forward pass.
    /// </summary>
    public bool UpdateStatistics { get; init; }

    /// <summary>
    /// Where dropout draws its masks. Dropout is active only in training mode and only when this is set: the
    /// training step sets it, curvature probes and HVP checks leave it null so the loss they differentiate is
    /// a deterministic function of the parameters.
    /// </summary>
    public Curvature.Engine.RandomGenerator? Noise { get; init; }

    /// <summary>True in training mode (dropout on, BatchNorm on batch statistics).</summary>
    public bool Training { get; }

    /// <summary>The tensor bound to a parameter.</summary>
    public Tensor this[Parameter p] => values.TryGetValue(p, out var t) ? t
        : throw new KeyNotFoundException($"bindings: a parameter of shape {p.Shape} is not bound; pass every parameter of the module.");
}
