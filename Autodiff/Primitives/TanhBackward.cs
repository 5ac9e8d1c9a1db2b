using Curvature.Engine;
using Curvature.Kernels.Cpu;
using Curvature.Kernels;

namespace Curvature.Autodiff.Primitives;

/// <summary>
/// z = g ⊙ (1 − y²), the backward of tanh written as one fused pass (y = tanh x, g the cotangent of y).
/// JVP: ż = ġ ⊙ (1 − y²) − 2 g ⊙ y ⊙ ẏ. VJP: ȳ = −2 z̄ ⊙ g ⊙ y, ḡ = z̄ ⊙ (1 − y²).
/// </summary>
public sealed class TanhBackward : Primitive
{
    /// <summary>The op (stateless).</summary>
    public static readonly TanhBackward Instance = new();
    /// <inheritdoc/>
    public override string Name => "tanh_backward";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => x[0].Apply(BinaryOp.MulOneMinusSquare, x[1]);
    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor z)
    {
        Tensor y = x[0], g = x[1];
        var fromG = xDot[1] is null ? null : Instance.Apply(y, xDot[1]!);
        var fromY = xDot[0] is null ? null : g * y * xDot[0]! * -2.0;
        var t = AddOrNull(fromG, fromY);
        return t?.BroadcastTo(z.Shape);
    }
    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor z, Tensor zBar, bool[] needed)
    {
        Tensor y = x[0], g = x[1];
        return [needed[0] ? SumBack(zBar * g * y * -2.0, y.Shape) : null,
                needed[1] ? SumBack(Instance.Apply(y, zBar), g.Shape) : null];
    }
}
