using Curvature.Engine;

namespace Curvature.Autodiff.Primitives;

/// <summary>
/// y = J(x)·u, the Jacobian of <see cref="Normalize"/> at x applied to u: r·(u − mean u − x̂·mean(u·x̂)) per
/// group. Linear and symmetric in u, so with respect to u the JVP is J·u̇ and the VJP J·ȳ. With respect to x
/// (differentiating J·u once more, r' = −r·mean(x̂ẋ)·r and x̂' = J·ẋ):
/// ∂ₓ(J u)[v] = −r·(mean(x̂ v)·J u + mean(u x̂)·J v + mean(J u · v)·x̂), which is symmetric in (u, v) up to the
/// roles of its arguments, so the same expression with v = ẋ is the JVP and with v = ȳ the VJP: both the fused
/// <see cref="NormalizeJacobianTangent"/>, whose own derivatives are exact too.
/// </summary>
public sealed class NormalizeJacobian(int groupStart, int groupEnd, double epsilon) : Primitive
{
    /// <summary>First group axis.</summary>
    public int GroupStart { get; } = groupStart;
    /// <summary>One past the last group axis.</summary>
    public int GroupEnd { get; } = groupEnd;
    /// <summary>ε.</summary>
    public double Epsilon { get; } = epsilon;
    /// <inheritdoc/>
    public override string Name => "normalize_jacobian";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => x[0].NormalizeJacobian(x[1], GroupStart, GroupEnd, Epsilon);
    /// <inheritdoc/>
    protected internal override long Flops(NdArray[] x, NdArray y) => 8 * y.Size;

    private Tensor J(Tensor x, Tensor v) => Apply(x, v);

    private NormalizeJacobianTangent Tangent => new(GroupStart, GroupEnd, Epsilon);

    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y) => (xDot[0], xDot[1]) switch
    {
        (null, null) => null,
        (null, { } uDot) => J(x[0], uDot),
        ({ } xDot0, null) => Tangent.Apply(x[0], x[1], y, xDot0),
        ({ } xDot0, { } uDot) => Tangent.Apply(x[0], x[1], y, xDot0, uDot),
    };

    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed) =>
        [needed[0] ? Tangent.Apply(x[0], x[1], y, yBar) : null, needed[1] ? J(x[0], yBar) : null];
}
