using Curvature.Engine;

namespace Curvature.Autodiff.Primitives;

/// <summary>
/// y = x·γ + β with one γ and β per group (group axes [start, end); γ and β hold one value per group, in any
/// shape of that size, such as BatchNorm's [C]): the affine step of BatchNorm in one pass. JVP:
/// ẏ = ScaleShift(ẋ, γ, β̇) + ScaleShift(x, γ̇, 0). VJP: x̄ = ȳ·γ, γ̄ = m·mean(ȳ ⊙ x) per group (one read pass, no product
/// written), β̄ = Σ ȳ per group.
/// </summary>
public sealed class ScaleShift(int groupStart, int groupEnd) : Primitive
{
    /// <summary>First group axis.</summary>
    public int GroupStart { get; } = groupStart;
    /// <summary>One past the last group axis.</summary>
    public int GroupEnd { get; } = groupEnd;
    /// <inheritdoc/>
    public override string Name => "scale_shift";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => x[0].ScaleShift(x[1], x[2], GroupStart, GroupEnd);
    /// <inheritdoc/>
    protected internal override long Flops(NdArray[] x, NdArray y) => 2 * y.Size;

    private Tensor Grouped(Tensor perGroup, Tensor like) => perGroup.Reshape(like.Data.GroupShape(GroupStart, GroupEnd));

    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y)
    {
        // ẋ·γ + β̇ and x·γ̇ are themselves scale-shifts: two fused passes and an add instead of five passes.
        Tensor Zeros() => Tensor.Constant(NdArray.Zeros(x[1].Shape, x[1].DType, x[1].Data.Device));
        Tensor? result = xDot[0] is not null ? Apply(xDot[0]!, x[1], xDot[2] ?? Zeros())
            : xDot[2] is not null ? Grouped(xDot[2]!, x[0]).BroadcastTo(y.Shape) : null;
        if (xDot[1] is not null) result = AddOrNull(result, Apply(x[0], xDot[1]!, Zeros()));
        return result;
    }

    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed)
    {
        var axes = Normalize.ReducedAxes(x[0].Rank, GroupStart, GroupEnd);
        double perGroup = (double)x[0].Shape.Size / x[1].Shape.Size;
        return
        [
            needed[0] ? yBar * Grouped(x[1], x[0]) : null,
            needed[1] ? (new GroupMeanProduct(GroupStart, GroupEnd).Apply(yBar, x[0]) * perGroup).Reshape(x[1].Shape) : null,
            needed[2] ? yBar.Sum(axes).Reshape(x[2].Shape) : null,
        ];
    }
}
