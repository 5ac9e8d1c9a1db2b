using Curvature.Engine;

namespace Curvature.Autodiff.Primitives;

/// <summary>
/// z = where(c, x, y): x where the constant condition c ≠ 0, else y (broadcasting). JVP: ż = where(c, ẋ, ẏ).
/// VJP: x̄ = sum_to(where(c, z̄, 0)), ȳ = sum_to(where(c, 0, z̄)); c gets no cotangent.
/// </summary>
public sealed class Where : Primitive
{
    /// <summary>The op (stateless).</summary>
    public static readonly Where Instance = new();
    /// <inheritdoc/>
    public override string Name => "where";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => NdArray.Where(x[0], x[1], x[2]);
    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y)
    {
        if (xDot[1] is null && xDot[2] is null) return null;
        return Tensor.Where(x[0].Detach(), xDot[1] ?? ZeroLike(y), xDot[2] ?? ZeroLike(y)).BroadcastTo(y.Shape);
    }
    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed)
    {
        var c = x[0].Detach();
        var zero = ZeroLike(yBar);
        return [null,
                needed[1] ? SumBack(Tensor.Where(c, yBar, zero), x[1].Shape) : null,
                needed[2] ? SumBack(Tensor.Where(c, zero, yBar), x[2].Shape) : null];
    }
}
