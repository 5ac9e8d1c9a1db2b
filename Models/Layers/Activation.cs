using Curvature.Autodiff;

namespace Curvature.Models.Layers;

/// <summary>tanh, element-wise (no parameters).</summary>
public sealed class Tanh : Module
{
    /// <inheritdoc/>
    public override Tensor Forward(Bindings b, Tensor x) => x.Tanh();
}

/// <summary>max(x, 0), element-wise (no parameters).</summary>
public sealed class Relu : Module
{
    /// <inheritdoc/>
    public override Tensor Forward(Bindings b, Tensor x) => x.Relu();
}

/// <summary>[N, …] → [N, product of the rest] (no parameters).</summary>
public sealed class Flatten : Module
{
    /// <inheritdoc/>
    public override Tensor Forward(Bindings b, Tensor x) => x.Rank == 2 ? x : x.Reshape(x.Shape[0], -1);
}
