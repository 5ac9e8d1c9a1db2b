using Curvature.Engine;
using Curvature.Kernels.Cpu;
using Curvature.Kernels;

namespace Curvature.Autodiff.Primitives;

/// <summary>y = tanh x. JVP: ẏ = ẋ ⊙ (1 − y²). VJP: x̄ = ȳ ⊙ (1 − y²). Both are the fused <see cref="TanhBackward"/>.</summary>
public sealed class Tanh : Primitive
{
    /// <summary>The op (stateless).</summary>
    public static readonly Tanh Instance = new();
    /// <inheritdoc/>
    public override string Name => "tanh";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => x[0].Apply(UnaryOp.Tanh);
    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y) => xDot[0] is null ? null : TanhBackward.Instance.Apply(y, xDot[0]!);
    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed) => [TanhBackward.Instance.Apply(y, yBar)];
}
