using Curvature.Engine;
using Curvature.Kernels;

namespace Curvature.Autodiff.Primitives;

/// <summary>
/// <see cref="NormalizeScaleShift"/>'s coefficients and their tangents, from (x, γ, β) and tangents (ẋ, γ̇, β̇): y of
/// shape [4] + the group shape with rows s = γr, t = β − μs, ṡ = γ̇r + γṙ and ṫ = β̇ − μ̇s − μṡ, where μ̇ = mean ẋ
/// and ṙ = −r³·C(ẋ, x) (<see cref="NormalizationCoefficients.Tangent"/>). The tangent of y = x·s + t is then one
/// two-pair scale-shift, ẋ·s + x·ṡ + ṫ. The forward is one read pass over x and ẋ and one small kernel
/// (<see cref="NormalizationOps.ScaleShiftTangent"/>) where op by op the same values took some thirty launches a layer in a
/// Hessian-vector product. Rules: those of its op-by-op <see cref="Reference"/> (only third derivatives reach them).
/// </summary>
public sealed class NormalizeScaleShiftTangent(int groupStart, int groupEnd, double epsilon) : Primitive
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
    public override string Name => "normalize_scale_shift_tangent";

    /// <summary>The rows of y: s, t, ṡ and ṫ.</summary>
    public const int ScaleRow = 0, ShiftRow = 1, ScaleTangentRow = 2, ShiftTangentRow = 3;

    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x)
    {
        if (x.Length != 6) throw new ArgumentException($"normalize_scale_shift_tangent: {x.Length} inputs; expected (x, γ, β, ẋ, γ̇, β̇).");
        var (mean, variance) = GroupMoments.Of(Known, x[0], GroupStart, GroupEnd);
        var rows = x[0].ScaleShiftTangent(x[3], x[1], x[2], x[4], x[5], mean, variance, GroupStart, GroupEnd, Epsilon);
        return rows.Reshape(new Shape([4, .. x[0].GroupShape(GroupStart, GroupEnd).ToArray()]));
    }
    /// <inheritdoc/>
    protected internal override long Flops(NdArray[] x, NdArray y) => 4 * x[0].Size;

    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y) => ReferenceJvp(Reference, x, xDot);

    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed) => ReferenceVjp(Reference, x, yBar);

    /// <summary>The same rows op by op from (x, γ, β, ẋ, γ̇, β̇): what the rules differentiate and tests compare the kernel with.</summary>
    public Tensor Reference(Tensor[] p)
    {
        Tensor x = p[0], xDot = p[3];
        var groups = x.Data.GroupShape(GroupStart, GroupEnd);
        Tensor gamma = p[1].Reshape(groups), beta = p[2].Reshape(groups), gammaDot = p[4].Reshape(groups), betaDot = p[5].Reshape(groups);
        Tensor mean = new GroupMean(GroupStart, GroupEnd).Apply(x), r = new GroupRstd(GroupStart, GroupEnd, Epsilon).Apply(x);
        Tensor scale = gamma * r, shift = beta - mean * scale;
        Tensor meanDot = new GroupMean(GroupStart, GroupEnd).Apply(xDot);
        Tensor rDot = -(r * r * r) * new GroupCovariance(GroupStart, GroupEnd).Apply(xDot, x);
        Tensor scaleDot = gammaDot * r + gamma * rDot;
        return Row.Stack([scale, shift, scaleDot, betaDot - meanDot * scale - mean * scaleDot]);
    }
}
