using Curvature.Engine;
using Curvature.Kernels.Cpu;
using Curvature.Kernels;

namespace Curvature.Autodiff.Primitives;

/// <summary>z = x / y (broadcasting). JVP: ż = (ẋ − z ⊙ ẏ) / y. VJP: x̄ = sum_to(z̄ / y), ȳ = −sum_to(z̄ ⊙ z / y).</summary>
public sealed class Divide : Primitive
{
    /// <summary>The op (stateless).</summary>
    public static readonly Divide Instance = new();
    /// <inheritdoc/>
    public override string Name => "div";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => x[0].Apply(BinaryOp.Div, x[1]);
    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y)
    {
        Tensor? num = xDot[1] is null ? xDot[0] : xDot[0] is null ? -(y * xDot[1]!) : xDot[0]! - y * xDot[1]!;
        if (num is null) return null;
        var t = num / x[1];
        return t.BroadcastTo(y.Shape);
    }
    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed)
    {
        var q = yBar / x[1];
        return [needed[0] ? SumBack(q, x[0].Shape) : null, needed[1] ? -SumBack(q * y, x[1].Shape) : null];
    }
}
