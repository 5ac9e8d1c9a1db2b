using Curvature.Engine;

namespace Curvature.Autodiff.Primitives;

/// <summary>
/// y = x·γ + β with one γ and β per group (group axes [start, end); γ and β hold one value per group, in any
/// shape of that size, such as BatchNorm's [C]): the affine step of BatchNorm in one pass. With a second pair,
/// inputs (x, γ, β, x₂, γ₂): y = x·γ + x₂·γ₂ + β, which is what the rules below produce, so the tangent
/// ẋ·γ + x·γ̇ + β̇ and the cotangent's tangent ȳ̇·γ + ȳ·γ̇ each take one pass instead of three. A last input z of
/// x's shape (inputs of even count: (x, γ, β, z) or (x, γ, β, x₂, γ₂, z)) is added, and with <see cref="Relu"/> the
/// result is clamped at zero: a ResNet block's BatchNorm, residual add and ReLU in one pass instead of three.
/// JVP: the sum over pairs of ẋ·γ + x·γ̇, plus β̇ and ż, grouped two pairs per call, each call after the first adding
/// the sum so far as its addend; through the ReLU, masked where y = 0. VJP with g = ȳ masked likewise: x̄ = g·γ (a scale-shift), γ̄ = m·mean(g ⊙ x) per group (one read pass, no
/// product written), β̄ = Σ g per group, z̄ = g, and the same for x₂, γ₂.
/// </summary>
public sealed class ScaleShift(int groupStart, int groupEnd, bool relu = false) : Primitive
{
    /// <summary>First group axis.</summary>
    public int GroupStart { get; } = groupStart;
    /// <summary>One past the last group axis.</summary>
    public int GroupEnd { get; } = groupEnd;
    /// <summary>Whether the result is clamped at zero (max(·, 0)).</summary>
    public bool Relu { get; } = relu;
    /// <inheritdoc/>
    public override string Name => Relu ? "scale_shift_relu" : "scale_shift";

    private static bool HasAddend(int inputs) => inputs % 2 == 0;
    private static bool HasPair(int inputs) => inputs >= 5;

    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x)
    {
        var addend = HasAddend(x.Length) ? x[^1] : null;
        if (HasPair(x.Length))
        {
            if (Relu) throw new ArgumentException("scale_shift: a clamped scale-shift takes one pair.");
            return x[0].ScaleShift(x[1], x[2], x[3], x[4], GroupStart, GroupEnd, addend);
        }
        return x[0].ScaleShift(x[1], x[2], GroupStart, GroupEnd, addend, Relu);
    }
    /// <inheritdoc/>
    protected internal override long Flops(NdArray[] x, NdArray y) => (HasPair(x.Length) ? 4 : 2) * y.Size + (HasAddend(x.Length) ? y.Size : 0);

    private Tensor Grouped(Tensor perGroup, Tensor like) => perGroup.Reshape(like.Data.GroupShape(GroupStart, GroupEnd));

    private static Tensor Zeros(Tensor like) => Tensor.Constant(NdArray.Zeros(like.Shape, like.DType, like.Data.Device));

    private ScaleShift Affine => new(GroupStart, GroupEnd);

    /// <summary>
    /// This op on <paramref name="inputs"/> (an odd count: no addend yet) with <paramref name="sum"/> as its addend where
    /// given: how a rule folds a backward sweep's partial sum into its scale-shift pass (<see cref="Primitive.VjpAccumulating"/>).
    /// </summary>
    internal Tensor ApplyPlus(Tensor? sum, params Tensor[] inputs) => Apply(sum is null ? inputs : [.. inputs, sum]);

    /// <summary>ȳ·γ for a per-group γ: a scale-shift with a zero shift, plus <paramref name="sum"/> where given.</summary>
    private Tensor Scaled(Tensor yBar, Tensor scale, Tensor? sum = null) => Affine.ApplyPlus(sum, yBar, scale, Zeros(scale));

    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y)
    {
        // Every non-zero term ẋ·γ or x·γ̇ is one (array, scale) pair; two pairs, the shift and the addend per fused pass.
        int arrays = HasAddend(x.Length) ? x.Length - 1 : x.Length;
        var pairs = new List<(Tensor Array, Tensor Scale)>(4);
        for (int p = 0; p < arrays; p += p == 0 ? 3 : 2)
        {
            if (xDot[p] is { } arrayDot) pairs.Add((arrayDot, x[p + 1]));
            if (xDot[p + 1] is { } scaleDot) pairs.Add((x[p], scaleDot));
        }
        var shiftDot = xDot[2];
        var addendDot = HasAddend(x.Length) ? xDot[^1] : null;
        Tensor? result;
        if (pairs.Count == 0)
            result = AddOrNull(shiftDot is null ? null : Grouped(shiftDot, x[0]).BroadcastTo(y.Shape), addendDot);
        else
        {
            // Each pass after the first takes the sum so far as its addend: no separate add pass.
            result = addendDot;
            for (int i = 0; i < pairs.Count; i += 2)
            {
                var shift = i == 0 && shiftDot is not null ? shiftDot : Zeros(x[1]);
                var inputs = new List<Tensor> { pairs[i].Array, pairs[i].Scale, shift };
                if (i + 1 < pairs.Count) inputs.AddRange([pairs[i + 1].Array, pairs[i + 1].Scale]);
                if (result is not null) inputs.Add(result);
                result = Affine.Apply([.. inputs]);
            }
        }
        return result is null || !Relu ? result : ReluBackward.Instance.Apply(y.Detach(), result);
    }

    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed) => Bars(x, y, yBar, needed, null);

    /// <inheritdoc/>
    /// <remarks>x̄ = g·γ + the sum so far in one scale-shift pass (and x̄₂ likewise).</remarks>
    protected internal override Tensor?[] VjpAccumulating(Tensor[] x, Tensor y, Tensor yBar, bool[] needed, Tensor?[] partial) =>
        AddPartials(Bars(x, y, yBar, needed, partial), HasPair(x.Length) ? Remaining(partial, 0, 3) : Remaining(partial, 0));

    private Tensor?[] Bars(Tensor[] x, Tensor y, Tensor yBar, bool[] needed, Tensor?[]? partial)
    {
        var g = Relu ? ReluBackward.Instance.Apply(y.Detach(), yBar) : yBar;
        var axes = Normalize.ReducedAxes(x[0].Rank, GroupStart, GroupEnd);
        double perGroup = (double)x[0].Shape.Size / x[1].Shape.Size;
        Tensor ScaleBar(Tensor array, Tensor scale) => (new GroupMeanProduct(GroupStart, GroupEnd).Apply(g, array) * perGroup).Reshape(scale.Shape);
        var bars = new Tensor?[x.Length];
        bars[0] = needed[0] ? Scaled(g, x[1], partial?[0]) : null;
        bars[1] = needed[1] ? ScaleBar(x[0], x[1]) : null;
        bars[2] = needed[2] ? g.Sum(axes).Reshape(x[2].Shape) : null;
        if (HasPair(x.Length))
        {
            bars[3] = needed[3] ? Scaled(g, x[4], partial?[3]) : null;
            bars[4] = needed[4] ? ScaleBar(x[3], x[4]) : null;
        }
        if (HasAddend(x.Length)) bars[^1] = needed[^1] ? g : null;
        return bars;
    }
}
