using Curvature.Engine;

namespace Curvature.Autodiff.Primitives;

/// <summary>
/// c = mean((a − mean a)·(b − mean b)) per group (group axes [start, end), the mean over all other axes, kept as
/// size-1 axes), computed without the cancellation of mean(a·b) − mean a·mean b. The statistic of BatchNorm's
/// derivatives: mean(u·x̂) = r·C(u, x) and the variance's tangent dσ² = 2·C(ẋ, x). Bilinear and symmetric, so
/// JVP: ċ = C(ȧ, b) + C(a, ḃ); VJP: ā = c̄·(b − mean b)/m, b̄ = c̄·(a − mean a)/m (m elements per group).
/// </summary>
public sealed class GroupCovariance(int groupStart, int groupEnd) : Primitive
{
    /// <summary>First group axis.</summary>
    public int GroupStart { get; } = groupStart;
    /// <summary>One past the last group axis.</summary>
    public int GroupEnd { get; } = groupEnd;
    /// <inheritdoc/>
    public override string Name => "group_covariance";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => x[0].GroupCovariance(x[1], GroupStart, GroupEnd);
    /// <inheritdoc/>
    protected internal override long Flops(NdArray[] x, NdArray y) => 4 * x[0].Size;
    /// <inheritdoc/>
    protected internal override bool JvpReadsOutput => false;
    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y) =>
        AddOrNull(xDot[0] is null ? null : Apply(xDot[0]!, x[1]), xDot[1] is null ? null : Apply(x[0], xDot[1]!));

    /// <summary>k·(v − mean v) per group, one scale-shift pass.</summary>
    private Tensor Centered(Tensor v, Tensor k) =>
        new ScaleShift(GroupStart, GroupEnd).Apply(v, k, -(new GroupMean(GroupStart, GroupEnd).Apply(v) * k));

    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed)
    {
        var k = yBar * ((double)y.Shape.Size / x[0].Shape.Size);
        return [needed[0] ? Centered(x[1], k) : null, needed[1] ? Centered(x[0], k) : null];
    }
}
