using Curvature.Engine;
using Curvature.Kernels;

namespace Curvature.Autodiff.Primitives;

/// <summary>
/// The tangent of <see cref="NormalizeScaleShiftBackward"/>'s rows (Σu, Σu·x̂, a, k, c) along (ẋ, γ̇, u̇), from
/// (x, γ, u, ẋ, γ̇, u̇): y of shape [5] + the group shape (<see cref="NormalizationCoefficients.BackwardTangent"/>):
/// with ṙ = −r²·mean(ẋx̂), μ̇ = mean ẋ and h = mean(u·x̂), ḣ = mean(u̇x̂) + r·(mean(uẋ) − ū·μ̇) + ṙ·h/r, then
/// ȧ = γ̇r + γṙ, k̇ = −(ȧrh + aṙh + arḣ) and ċ = −(ȧū + a·mean u̇) − μ̇k − μk̇. In a Hessian-vector product this is
/// the backward's share of BatchNorm: four read passes and one small kernel (<see cref="NormalizationOps.ScaleShiftBackwardTangent"/>)
/// where op by op it took some forty-five launches a layer. Rules: those of its op-by-op <see cref="Reference"/>, except
/// the VJP with respect to the tangents alone (a recorded product's transposed sweep, <see cref="RecordedHvp"/>): the rows
/// are linear in (ẋ, γ̇, u̇), and <see cref="Vjp"/> writes their transpose out.
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

    private readonly ConstantStatistics statistics = new();

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
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed) => Bars(x, yBar, needed, null);

    /// <inheritdoc/>
    /// <remarks>ẋ̄ and u̇̄ each with the sum so far in their one scale-shift pass.</remarks>
    protected internal override Tensor?[] VjpAccumulating(Tensor[] x, Tensor y, Tensor yBar, bool[] needed, Tensor?[] partial) =>
        needed[0] || needed[1] || needed[2] ? AddPartials(Vjp(x, y, yBar, needed), partial) : AddPartials(Bars(x, yBar, needed, partial), Remaining(partial, 3, 5));

    private Tensor?[] Bars(Tensor[] x, Tensor yBar, bool[] needed, Tensor?[]? partial)
    {
        if (needed[0] || needed[1] || needed[2]) return ReferenceVjp(Reference, x, yBar);
        // The summary's rows taken backwards, per group (ū = mean u, h = r·C(u, x), a = γr, k = −a·r·h constants):
        // from ċ = −(ȧū + a·ū̇) − μ̇k − μk̇, k̇ = −(ȧrh + aṙh + arḣ), ȧ = γ̇r + γṙ, ḣ = r(C(u̇, x) + C(u, ẋ)) + ṙh/r,
        // ṙ = −r³·C(ẋ, x) and the rows n·ū̇, n·ḣ. A covariance's cotangent C̄ gives each argument C̄·(other − its mean)/m,
        // so ẋ̄ and u̇̄ are each one scale-shift pass.
        Tensor input = x[0], u = x[2];
        var groups = input.Data.GroupShape(GroupStart, GroupEnd);
        double n = (double)input.Shape.Size / groups.Size;
        Tensor gamma = x[1].Reshape(groups);
        var constants = statistics.Get(x, () =>
        {
            var meanOp = new GroupMean(GroupStart, GroupEnd);
            Tensor rstd = new GroupRstd(GroupStart, GroupEnd, Epsilon).Apply(input);
            return [meanOp.Apply(input), rstd, meanOp.Apply(u), rstd * new GroupCovariance(GroupStart, GroupEnd).Apply(u, input)];
        });
        Tensor mean = constants[0], r = constants[1], uMean = constants[2], h = constants[3], a = gamma * r, k = -(a * r * h);
        Tensor Bar(int i) => new Row(i).Apply(yBar);
        Tensor cDotBar = Bar(4);
        Tensor kDotBar = Bar(3) - mean * cDotBar;
        Tensor aDotBar = Bar(2) - uMean * cDotBar - r * h * kDotBar;
        Tensor hDotBar = Bar(1) * n - a * r * kDotBar;
        Tensor rDotBar = -(a * h) * kDotBar + gamma * aDotBar + (h / r) * hDotBar;
        Tensor uDotMeanBar = Bar(0) * n - a * cDotBar;
        Tensor meanDotBar = -k * cDotBar;
        Tensor mixedBar = r * hDotBar * (1 / n);                    // C(u̇, x) and C(u, ẋ), over m
        Tensor ownBar = -(r * r * r) * rDotBar * (1 / n);           // C(ẋ, x), over m
        var affine = new ScaleShift(GroupStart, GroupEnd);
        var bars = new Tensor?[x.Length];
        if (needed[3]) bars[3] = affine.ApplyPlus(partial?[3], u, mixedBar, meanDotBar * (1 / n) - mixedBar * uMean - ownBar * mean, input, ownBar);
        if (needed[4]) bars[4] = (r * aDotBar).Reshape(x[4].Shape);
        if (needed[5]) bars[5] = affine.ApplyPlus(partial?[5], input, mixedBar, uDotMeanBar * (1 / n) - mixedBar * mean);
        return bars;
    }

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
