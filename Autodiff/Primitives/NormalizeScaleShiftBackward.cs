using Curvature.Engine;
using Curvature.Kernels;

namespace Curvature.Autodiff.Primitives;

/// <summary>
/// What <see cref="NormalizeScaleShift"/>'s backward needs per group, from x, γ and the output's cotangent u (already
/// masked where a ReLU clamped): y of shape [5] + the group shape, whose rows are Σu (β̄), Σu·x̂ (γ̄) and the a, k, c
/// of x̄ = u·a + x·k + c, with a = γr, k = −a·r·h and c = −a·ū − μ·k, ū = mean u, h = mean(u·x̂)
/// (<see cref="NormalizationCoefficients.Backward"/>). The forward is one read pass over x and u and one small
/// kernel (<see cref="NormalizationOps.ScaleShiftBackward"/>); the same values op by op took some twenty launches per layer.
/// JVP (the backward's tangent, a Hessian-vector product's share): <see cref="NormalizeScaleShiftBackwardTangent"/>, fused
/// likewise. VJP: the reverse derivative of the same values written op by op (<see cref="Reference"/>), which only
/// reverse-over-reverse derivatives reach.
/// </summary>
public sealed class NormalizeScaleShiftBackward(int groupStart, int groupEnd, double epsilon) : Primitive
{
    /// <summary>First group axis.</summary>
    public int GroupStart { get; } = groupStart;
    /// <summary>One past the last group axis.</summary>
    public int GroupEnd { get; } = groupEnd;
    /// <summary>ε.</summary>
    public double Epsilon { get; } = epsilon;
    /// <summary>The moments of x when the forward that normalized it computed them (then neither pass reads x for them again).</summary>
    internal GroupMoments? Known { get; init; }
    /// <inheritdoc/>
    public override string Name => "normalize_scale_shift_backward";

    /// <summary>The rows of y: β̄, γ̄, a, k and c.</summary>
    public const int SumRow = 0, ProductRow = 1, ARow = 2, KRow = 3, CRow = 4;

    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x)
    {
        if (x.Length != 3) throw new ArgumentException($"normalize_scale_shift_backward: {x.Length} inputs; expected (x, γ, u).");
        var (mean, variance) = GroupMoments.Of(Known, x[0], GroupStart, GroupEnd);
        var rows = x[0].ScaleShiftBackward(x[2], x[1], mean, variance, GroupStart, GroupEnd, Epsilon);
        return rows.Reshape(Stacked(x[0].GroupShape(GroupStart, GroupEnd)));
    }
    /// <inheritdoc/>
    protected internal override long Flops(NdArray[] x, NdArray y) => 4 * x[0].Size;

    private static Shape Stacked(Shape group) => new([5, .. group.ToArray()]);
    private Tensor Grouped(Tensor perGroup, Tensor like) => perGroup.Reshape(like.Data.GroupShape(GroupStart, GroupEnd));
    private Tensor Covariance(Tensor a, Tensor b) => new GroupCovariance(GroupStart, GroupEnd).Apply(a, b);
    private Tensor SumOverGroup(Tensor t) => t.Sum(Normalize.ReducedAxes(t.Rank, GroupStart, GroupEnd), keepDims: true);

    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y)
    {
        if (xDot.All(t => t is null)) return null;
        Tensor Or0(int i) => xDot[i] ?? NdArray.Zeros(x[i].Shape, x[i].DType, x[i].Device);
        return new NormalizeScaleShiftBackwardTangent(GroupStart, GroupEnd, Epsilon) { Known = Known }.Apply(x[0], x[1], x[2], Or0(0), Or0(1), Or0(2));
    }

    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed) =>
        ReferenceVjp(xs => Reference(xs[0], xs[1], xs[2]), x, yBar);

    /// <summary>The same values as the forward, op by op: what the rules differentiate, and what tests compare the kernel with.</summary>
    public Tensor Reference(Tensor x, Tensor gamma, Tensor u)
    {
        Tensor g = Grouped(gamma, x);
        double n = (double)x.Shape.Size / g.Shape.Size;
        Tensor mean = new GroupMean(GroupStart, GroupEnd).Apply(x), r = new GroupRstd(GroupStart, GroupEnd, Epsilon).Apply(x);
        Tensor sum = SumOverGroup(u), h = r * Covariance(u, x);
        Tensor a = g * r, k = -(a * r * h);
        Tensor c = -(a * (sum * (1 / n))) - mean * k;
        return Row.Stack([sum, h * n, a, k, c]);
    }
}
