using Curvature.Engine;

namespace Curvature.Autodiff.Primitives;

/// <summary>
/// y = x·γ + β with one γ and β per group (group axes [start, end); γ and β hold one value per group, in any
/// shape of that size, such as BatchNorm's [C]): the affine step of BatchNorm in one pass. With a second pair,
/// inputs (x, γ, β, x₂, γ₂): y = x·γ + x₂·γ₂ + β, which is what the rules below produce, so the tangent
/// ẋ·γ + x·γ̇ + β̇ and the cotangent's tangent ȳ̇·γ + ȳ·γ̇ each take one pass instead of three.
/// JVP: the sum over pairs of ẋ·γ + x·γ̇, plus β̇, grouped two pairs per call. VJP: x̄ = ȳ·γ (a scale-shift),
/// γ̄ = m·mean(ȳ ⊙ x) per group (one read pass, no product written), β̄ = Σ ȳ per group, and the same for x₂, γ₂.
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
    protected internal override NdArray Forward(NdArray[] x) => x.Length > 3
        ? x[0].ScaleShift(x[1], x[2], x[3], x[4], GroupStart, GroupEnd)
        : x[0].ScaleShift(x[1], x[2], GroupStart, GroupEnd);
    /// <inheritdoc/>
    protected internal override long Flops(NdArray[] x, NdArray y) => (x.Length > 3 ? 4 : 2) * y.Size;

    private Tensor Grouped(Tensor perGroup, Tensor like) => perGroup.Reshape(like.Data.GroupShape(GroupStart, GroupEnd));

    private static Tensor Zeros(Tensor like) => Tensor.Constant(NdArray.Zeros(like.Shape, like.DType, like.Data.Device));

    /// <summary>ȳ·γ for a per-group γ: a scale-shift with a zero shift.</summary>
    private Tensor Scaled(Tensor yBar, Tensor scale) => Apply(yBar, scale, Zeros(scale));

    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y)
    {
        // Every non-zero term ẋ·γ or x·γ̇ is one (array, scale) pair; two pairs and the shift per fused pass.
        var pairs = new List<(Tensor Array, Tensor Scale)>(4);
        for (int p = 0; p < x.Length; p += p == 0 ? 3 : 2)
        {
            if (xDot[p] is { } arrayDot) pairs.Add((arrayDot, x[p + 1]));
            if (xDot[p + 1] is { } scaleDot) pairs.Add((x[p], scaleDot));
        }
        var shiftDot = xDot[2];
        if (pairs.Count == 0) return shiftDot is null ? null : Grouped(shiftDot, x[0]).BroadcastTo(y.Shape);
        Tensor? result = null;
        for (int i = 0; i < pairs.Count; i += 2)
        {
            var shift = i == 0 && shiftDot is not null ? shiftDot : Zeros(x[1]);
            var term = i + 1 < pairs.Count
                ? Apply(pairs[i].Array, pairs[i].Scale, shift, pairs[i + 1].Array, pairs[i + 1].Scale)
                : Apply(pairs[i].Array, pairs[i].Scale, shift);
            result = AddOrNull(result, term);
        }
        return result;
    }

    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed)
    {
        var axes = Normalize.ReducedAxes(x[0].Rank, GroupStart, GroupEnd);
        double perGroup = (double)x[0].Shape.Size / x[1].Shape.Size;
        Tensor ScaleBar(Tensor array, Tensor scale) => (new GroupMeanProduct(GroupStart, GroupEnd).Apply(yBar, array) * perGroup).Reshape(scale.Shape);
        var bars = new Tensor?[x.Length];
        bars[0] = needed[0] ? Scaled(yBar, x[1]) : null;
        bars[1] = needed[1] ? ScaleBar(x[0], x[1]) : null;
        bars[2] = needed[2] ? yBar.Sum(axes).Reshape(x[2].Shape) : null;
        if (x.Length > 3)
        {
            bars[3] = needed[3] ? Scaled(yBar, x[4]) : null;
            bars[4] = needed[4] ? ScaleBar(x[3], x[4]) : null;
        }
        return bars;
    }
}
