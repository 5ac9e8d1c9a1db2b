using Curvature.Engine;
using Curvature.Kernels.Cpu;
using Curvature.Kernels;

namespace Curvature.Autodiff.Primitives;

/// <summary>
/// y = max(x, 0). JVP: ẏ = [x &gt; 0] ⊙ ẋ, VJP: x̄ = [x &gt; 0] ⊙ ȳ, both the fused <see cref="ReluBackward"/> (the second
/// derivative is 0 almost everywhere).
/// </summary>
public sealed class Relu : Primitive
{
    /// <summary>The op (stateless).</summary>
    public static readonly Relu Instance = new();
    /// <inheritdoc/>
    public override string Name => "relu";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => x[0].Apply(UnaryOp.Relu);
    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y) => xDot[0] is null ? null : ReluBackward.Instance.Apply(x[0].Detach(), xDot[0]!);
    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed) => [ReluBackward.Instance.Apply(x[0].Detach(), yBar)];
}
