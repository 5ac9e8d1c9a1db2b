using Curvature.Engine;

namespace Curvature.Autodiff.Primitives;

/// <summary>
/// t = ∂ₓ(J(x)·u)[v] + J(x)·w, the tangent of <see cref="NormalizeJacobian"/> y = J(x)·u along (ẋ, u̇) = (v, w),
/// given ju = J(x)·u: inputs (x, u, ju, v) or (x, u, ju, v, w). Differentiating J·u once more
/// (r' = −r·mean(x̂ẋ)·r, x̂' = J·ẋ) gives ∂ₓ(J u)[v] = −r·(mean(x̂ v)·ju + mean(u x̂)·J v + mean(ju v)·x̂).
/// This is the innermost rule of every Hessian-vector product through BatchNorm or LayerNorm, so it runs as one
/// fused kernel (two passes over memory instead of some fifteen); its own derivatives (third order) are those of the
/// composed definition <see cref="Reference"/>, taken by a nested forward or reverse pass.
/// </summary>
public sealed class NormalizeJacobianTangent(int groupStart, int groupEnd, double epsilon) : Primitive
{
    /// <summary>First group axis.</summary>
    public int GroupStart { get; } = groupStart;
    /// <summary>One past the last group axis.</summary>
    public int GroupEnd { get; } = groupEnd;
    /// <summary>ε.</summary>
    public double Epsilon { get; } = epsilon;
    /// <inheritdoc/>
    public override string Name => "normalize_jacobian_tangent";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) =>
        x[0].NormalizeJacobianTangent(x[1], x[2], x[3], x.Length > 4 ? x[4] : null, GroupStart, GroupEnd, Epsilon);
    /// <inheritdoc/>
    protected internal override long Flops(NdArray[] x, NdArray y) => (x.Length > 4 ? 19 : 15) * y.Size;

    /// <summary>The same function composed of primitives: the definition the fused kernel must match.</summary>
    public Tensor Reference(Tensor[] x)
    {
        Tensor xs = x[0], u = x[1], ju = x[2], v = x[3];
        var xHat = new Normalize(GroupStart, GroupEnd, Epsilon).Apply(xs);
        var r = new GroupRstd(GroupStart, GroupEnd, Epsilon).Apply(xs);
        var mean = new GroupMeanProduct(GroupStart, GroupEnd);
        var jacobian = new NormalizeJacobian(GroupStart, GroupEnd, Epsilon);
        var t = -r * (mean.Apply(xHat, v) * ju + mean.Apply(u, xHat) * jacobian.Apply(xs, v) + mean.Apply(ju, v) * xHat);
        return x.Length > 4 ? t + jacobian.Apply(xs, x[4]) : t;
    }

    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y)
    {
        if (xDot.All(d => d is null)) return null;
        var dots = xDot.Select((d, i) => d ?? (Tensor)x[i].Data.ZerosLike()).ToArray();
        return Derivatives.Jvp(Reference, x, dots).Tangent;
    }

    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed) =>
        Derivatives.Vjp(Reference, x, yBar).Cotangents;
}
