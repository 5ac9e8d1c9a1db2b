using Curvature.Engine;
using Curvature.Kernels.Cpu;
using Curvature.Kernels;

namespace Curvature.Autodiff.Primitives;

/// <summary>
/// z = max(x, y) element-wise (broadcasting). With the constant mask m = [x ≥ y]: JVP: ż = where(m, ẋ, ẏ).
/// VJP: x̄ = sum_to(where(m, z̄, 0)), ȳ = sum_to(where(m, 0, z̄)). Ties go to x.
/// </summary>
public sealed class Maximum : Primitive
{
    /// <summary>The op (stateless).</summary>
    public static readonly Maximum Instance = new();
    /// <inheritdoc/>
    public override string Name => "maximum";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => x[0].Apply(BinaryOp.Max, x[1]);
    private static Tensor Mask(Tensor[] x) => x[0].Data.Apply(BinaryOp.GreaterEqual, x[1].Data);
    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y)
    {
        if (xDot[0] is null && xDot[1] is null) return null;
        return Tensor.Where(Mask(x), xDot[0] ?? ZeroLike(y), xDot[1] ?? ZeroLike(y));
    }
    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed)
    {
        var m = Mask(x);
        var zero = ZeroLike(yBar);
        return [needed[0] ? SumBack(Tensor.Where(m, yBar, zero), x[0].Shape) : null,
                needed[1] ? SumBack(Tensor.Where(m, zero, yBar), x[1].Shape) : null];
    }
}
