using Curvature.Autodiff;

namespace Curvature.Models.Layers;

/// <summary>The exact (erf) GELU, x·Φ(x), as PyTorch's nn.GELU() default (no parameters).</summary>
public sealed class Gelu : Module
{
    /// <inheritdoc/>
    public override Tensor Forward(Bindings b, Tensor x) => x.Gelu();
}
