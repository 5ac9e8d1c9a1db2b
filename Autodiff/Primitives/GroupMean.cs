using Curvature.Engine;

namespace Curvature.Autodiff.Primitives;

/// <summary>
/// μ = mean x per group (group axes [start, end), the mean over all other axes, kept as size-1 axes): the center of
/// <see cref="Normalize"/>. Linear, so JVP: μ̇ = mean ẋ; VJP: x̄ = μ̄/m broadcast (m elements per group).
/// </summary>
public sealed class GroupMean(int groupStart, int groupEnd) : Primitive
{
    /// <summary>First group axis.</summary>
    public int GroupStart { get; } = groupStart;
    /// <summary>One past the last group axis.</summary>
    public int GroupEnd { get; } = groupEnd;
    /// <inheritdoc/>
    public override string Name => "group_mean";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) =>
        x[0].GroupMoments(GroupStart, GroupEnd).Mean.Reshape(x[0].GroupShape(GroupStart, GroupEnd)).Cast(x[0].DType);
    /// <inheritdoc/>
    protected internal override long Flops(NdArray[] x, NdArray y) => x[0].Size;
    /// <inheritdoc/>
    protected internal override bool JvpReadsOutput => false;
    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y) => xDot[0] is { } along ? Apply(along) : null;
    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed) =>
        [(yBar * ((double)y.Shape.Size / x[0].Shape.Size)).BroadcastTo(x[0].Shape)];
}
