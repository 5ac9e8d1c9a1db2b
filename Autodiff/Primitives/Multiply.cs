using Curvature.Engine;
using Curvature.Kernels.Cpu;
using Curvature.Kernels;

namespace Curvature.Autodiff.Primitives;

/// <summary>z = x ⊙ y (broadcasting). JVP: ż = ẋ ⊙ y + x ⊙ ẏ. VJP: x̄ = sum_to(z̄ ⊙ y), ȳ = sum_to(z̄ ⊙ x).</summary>
public sealed class Multiply : Primitive
{
    /// <summary>The op (stateless).</summary>
    public static readonly Multiply Instance = new();
    /// <inheritdoc/>
    public override string Name => "mul";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => x[0].Apply(BinaryOp.Mul, x[1]);
    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y)
    {
        var t = AddOrNull(xDot[0] is null ? null : xDot[0]! * x[1], xDot[1] is null ? null : x[0] * xDot[1]!);
        return t?.BroadcastTo(y.Shape);
    }
    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed) =>
        [needed[0] ? SumBack(yBar * x[1], x[0].Shape) : null, needed[1] ? SumBack(yBar * x[0], x[1].Shape) : null];
}
