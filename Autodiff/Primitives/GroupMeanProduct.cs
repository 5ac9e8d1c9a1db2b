using Curvature.Engine;

namespace Curvature.Autodiff.Primitives;

/// <summary>
/// c = mean(a ⊙ b) per group (group axes [start, end), the mean over all other axes, kept as size-1 axes): the
/// per-channel inner products of BatchNorm's and LayerNorm's derivatives in one read pass. Bilinear, so
/// JVP: ċ = f(ȧ, b) + f(a, ḃ); VJP: ā = c̄·b/m, b̄ = c̄·a/m (c̄ broadcast, m elements per group).
/// </summary>
public sealed class GroupMeanProduct(int groupStart, int groupEnd) : Primitive
{
    /// <summary>First group axis.</summary>
    public int GroupStart { get; } = groupStart;
    /// <summary>One past the last group axis.</summary>
    public int GroupEnd { get; } = groupEnd;
    /// <inheritdoc/>
    public override string Name => "group_mean_product";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => x[0].GroupMeanProduct(x[1], GroupStart, GroupEnd);
    /// <inheritdoc/>
    protected internal override long Flops(NdArray[] x, NdArray y) => 2 * x[0].Size;
    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y) =>
        AddOrNull(xDot[0] is null ? null : Apply(xDot[0]!, x[1]), xDot[1] is null ? null : Apply(x[0], xDot[1]!));
    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed)
    {
        var scaled = yBar * ((double)y.Shape.Size / x[0].Shape.Size);
        return [needed[0] ? scaled * x[1] : null, needed[1] ? scaled * x[0] : null];
    }
}
