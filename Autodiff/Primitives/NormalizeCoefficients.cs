using Curvature.Engine;

namespace Curvature.Autodiff.Primitives;

/// <summary>
/// <see cref="NormalizeScaleShift"/>'s coefficients alone, from (x, γ, β): y of shape [2] + the group shape with rows
/// s = γ·r and t = β − μ·s. The forward's moments make it one small kernel, no pass over x. Its tangent rule takes s and t
/// from here rather than from <see cref="NormalizeScaleShiftTangent"/>'s rows, so that they depend on the primals only:
/// in a recorded product (<see cref="RecordedHvp"/>) they are then constants of the tangent graph, and the transposed
/// sweep computes no cotangent for them. Rules: those of its op-by-op <see cref="Reference"/> (only third derivatives
/// reach them).
/// </summary>
public sealed class NormalizeCoefficients(int groupStart, int groupEnd, double epsilon) : Primitive
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
    public override string Name => "normalize_coefficients";

    /// <summary>The rows of y: s and t.</summary>
    public const int ScaleRow = 0, ShiftRow = 1;

    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x)
    {
        if (x.Length != 3) throw new ArgumentException($"normalize_coefficients: {x.Length} inputs; expected (x, γ, β).");
        var (mean, variance) = GroupMoments.Of(Known, x[0], GroupStart, GroupEnd);
        var rows = x[0].ScaleShiftCoefficients(x[1], x[2], mean, variance, GroupStart, GroupEnd, Epsilon);
        return rows.Reshape(new Shape([2, .. x[0].GroupShape(GroupStart, GroupEnd).ToArray()]));
    }
    /// <inheritdoc/>
    protected internal override long Flops(NdArray[] x, NdArray y) => 4 * x[1].Size;

    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y) => ReferenceJvp(Reference, x, xDot);

    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed) => ReferenceVjp(Reference, x, yBar);

    /// <summary>The same rows op by op from (x, γ, β): what the rules differentiate and tests compare the kernel with.</summary>
    public Tensor Reference(Tensor[] p)
    {
        var groups = p[0].Data.GroupShape(GroupStart, GroupEnd);
        Tensor gamma = p[1].Reshape(groups), beta = p[2].Reshape(groups);
        Tensor mean = new GroupMean(GroupStart, GroupEnd).Apply(p[0]), r = new GroupRstd(GroupStart, GroupEnd, Epsilon).Apply(p[0]);
        Tensor scale = gamma * r;
        return Row.Stack([scale, beta - mean * scale]);
    }
}
