using Curvature.Engine;
using Curvature.Kernels.Cpu;
using Curvature.Kernels;

namespace Curvature.Autodiff.Primitives;

/// <summary>z = x − y (broadcasting). JVP: ż = ẋ − ẏ. VJP: x̄ = sum_to(z̄), ȳ = −sum_to(z̄).</summary>
public sealed class Subtract : Primitive
{
    /// <summary>The op (stateless).</summary>
    public static readonly Subtract Instance = new();
    /// <inheritdoc/>
    public override string Name => "sub";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => x[0].Apply(BinaryOp.Sub, x[1]);
    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y)
    {
        Tensor? t = xDot[1] is null ? xDot[0] : xDot[0] is null ? -xDot[1]! : xDot[0]! - xDot[1]!;
        return t?.BroadcastTo(y.Shape);
    }
    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed) =>
        [needed[0] ? SumBack(yBar, x[0].Shape) : null, needed[1] ? -SumBack(yBar, x[1].Shape) : null];
}
