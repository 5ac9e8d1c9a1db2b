using Curvature.Engine;
using Curvature.Kernels.Cpu;
using Curvature.Kernels;

namespace Curvature.Autodiff.Primitives;

/// <summary>y = exp x. JVP: ẏ = y ⊙ ẋ. VJP: x̄ = ȳ ⊙ y.</summary>
public sealed class Exp : Primitive
{
    /// <summary>The op (stateless).</summary>
    public static readonly Exp Instance = new();
    /// <inheritdoc/>
    public override string Name => "exp";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => x[0].Apply(UnaryOp.Exp);
    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y) => xDot[0] is null ? null : xDot[0]! * y;
    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed) => [yBar * y];
}
