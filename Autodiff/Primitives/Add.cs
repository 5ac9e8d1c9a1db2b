using Curvature.Engine;
using Curvature.Kernels.Cpu;
using Curvature.Kernels;

namespace Curvature.Autodiff.Primitives;

/// <summary>z = x + y (broadcasting). JVP: ż = ẋ + ẏ. VJP: x̄ = sum_to(z̄, x.shape), ȳ = sum_to(z̄, y.shape).</summary>
public sealed class Add : Primitive
{
    /// <summary>The op (stateless).</summary>
    public static readonly Add Instance = new();
    /// <inheritdoc/>
    public override string Name => "add";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => x[0].Apply(BinaryOp.Add, x[1]);
    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y)
    {
        var t = AddOrNull(xDot[0], xDot[1]);
        return t?.BroadcastTo(y.Shape);
    }
    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed) =>
        [needed[0] ? SumBack(yBar, x[0].Shape) : null, needed[1] ? SumBack(yBar, x[1].Shape) : null];
}
