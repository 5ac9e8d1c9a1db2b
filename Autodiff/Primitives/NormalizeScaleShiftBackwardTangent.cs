using Curvature.Engine;
using Curvature.Kernels;

namespace Curvature.Autodiff.Primitives;

/// <summary>
/// The tangent of <see cref="NormalizeScaleShiftBackward"/>'s rows (Σu, Σu·x̂, a, k, c) along (ẋ, γ̇, u̇), from
/// (x, γ, u, ẋ, γ̇, u̇): y of shape [5] + the group shape (<see cref="NormalizationCoefficients.BackwardTangent"/>):
/// with ṙ = −r²·mean(ẋx̂), μ̇ = mean ẋ and h = mean(u·x̂), ḣ = mean(u̇x̂) + r·(mean(uẋ) − ū·μ̇) + ṙ·h/r, then
/// ȧ = γ̇r + γṙ, k̇ = −(ȧrh + aṙh + arḣ) and ċ = −(ȧū + a·mean u̇) − μ̇k − μk̇. In a Hessian-vector product this is
/// the backward's share of BatchNorm: four read passes and one small kernel (<see cref="NormalizationOps.ScaleShiftBackwardTangent"/>)
/// where op by op it took some forty-five launches a layer. Rules: those of its op-by-op <see cref="Reference"/>.
/// </summary>
public sealed class NormalizeScaleShiftBackwardTangent(int groupStart, int groupEnd, double epsilon) : Primitive
{
    /// <summary>First group axis.</summary>
    public int GroupStart { get; } = groupStart;
    /// <summary>One past the last group axis.</summary>
    public int GroupEnd { get; } = groupEnd;
    /// <summary>ε.</summary>
    public double Epsilon { get; } = epsilon;
    /// <summary>The moments of x when the forward that normalized it computed them.</summary>
    internal GroupMoments? Known { get; init; }
    /// <inheritdoc/>
    public override string Name => "normalize_scale_shift_backward_tangent";

    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x)
    {
        if (x.Length != 6) throw new ArgumentException($"normalize_scale_shift_backward_tangent: {x.Length} inputs; expected (x, γ, u, ẋ, γ̇, u̇).");
        var (mean, variance) = GroupMoments.Of(Known, x[0], GroupStart, GroupEnd);
        var rows = x[0].ScaleShiftBackwardTangent(x[2], x[1], x[3], x[4], x[5], mean, variance, GroupStart, GroupEnd, Epsilon);
        return rows.Reshape(new Shape([5, .. x[0].GroupShape(GroupStart, GroupEnd).ToArray()]));
    }
    /// <inheritdoc/>
    protected internal override long Flops(NdArray[] x, NdArray y) => 8 * x[0].Size;

    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y) => ReferenceJvp(Reference, x, xDot);

    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed) => ReferenceVjp(Reference, x, yBar);

    /// <summary>The same rows op by op from (x, γ, u, ẋ, γ̇, u̇): what the rules differentiate and tests compare the kernel with.</summary>
    public Tensor Reference(Tensor[] p)
    {
        Tensor input = p[0], u = p[2], inputDot = p[3], uDot = p[5];
        var groups = input.Data.GroupShape(GroupStart, GroupEnd);
        Tensor gamma = p[1].Reshape(groups), gammaDot = p[4].Reshape(groups);
        double n = (double)input.Shape.Size / groups.Size;
        var meanOp = new GroupMean(GroupStart, GroupEnd);
        var rstdOp = new GroupRstd(GroupStart, GroupEnd, Epsilon);
        Tensor Covariance(Tensor a, Tensor b) => new GroupCovariance(GroupStart, GroupEnd).Apply(a, b);
        Tensor mean = meanOp.Apply(input), r = rstdOp.Apply(input);
        Tensor uMean = meanOp.Apply(u), h = r * Covariance(u, input), a = gamma * r, k = -(a * r * h);
        Tensor meanDot = meanOp.Apply(inputDot), rDot = -(r * r * r) * Covariance(inputDot, input), uDotMean = meanOp.Apply(uDot);
        Tensor hDot = r * (Covariance(uDot, input) + Covariance(u, inputDot)) + rDot * (h / r);
        Tensor aDot = gammaDot * r + gamma * rDot;
        Tensor kDot = -(aDot * r * h + a * rDot * h + a * r * hDot);
        Tensor cDot = -(aDot * uMean + a * uDotMean) - meanDot * k - mean * kDot;
        return Row.Stack([uDotMean * n, hDot * n, aDot, kDot, cDot]);
    }
}
