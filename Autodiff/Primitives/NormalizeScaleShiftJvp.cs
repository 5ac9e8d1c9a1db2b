using Curvature.Engine;
using Curvature.Kernels;

namespace Curvature.Autodiff.Primitives;

/// <summary>
/// <see cref="NormalizeScaleShift"/>'s tangent as one primitive: from (x, γ, β, ẋ, γ̇, β̇) or (x, γ, β, ẋ, γ̇, β̇, ż),
/// ẏ = ẋ·s + x·ṡ + ṫ (+ ż), masked where the forward's ReLU clamped (<see cref="Mask"/>), with s, t, ṡ, ṫ as in
/// <see cref="NormalizeScaleShiftTangent"/>: the same two kernels as that primitive followed by a two-pair
/// <see cref="ScaleShift"/>. Kept whole so that its transpose is whole too: ẏ is linear in the tangents, and its VJP
/// along them alone is BatchNorm's own VJP at (x, γ) applied to ȳ (the transpose of a Jacobian-vector product is the
/// vector-Jacobian product): with g = ȳ masked likewise, ẋ̄ = g·a + x·k + c from <see cref="NormalizeScaleShiftBackward"/>'s
/// one read pass, γ̇̄ = Σ g·x̂, β̇̄ = Σ g and ż̄ = g, where the rules of the separate ops took six passes and an add.
/// That VJP is what a recorded product's transposed sweep (<see cref="RecordedHvp"/>) runs at every product. The other
/// rules are those of the op-by-op <see cref="Reference"/> (only third derivatives reach them).
/// </summary>
public sealed class NormalizeScaleShiftJvp(int groupStart, int groupEnd, double epsilon, bool relu = false) : Primitive
{
    /// <summary>First group axis.</summary>
    public int GroupStart { get; } = groupStart;
    /// <summary>One past the last group axis.</summary>
    public int GroupEnd { get; } = groupEnd;
    /// <summary>ε.</summary>
    public double Epsilon { get; } = epsilon;
    /// <summary>Whether the forward clamped at zero: then <see cref="Mask"/> is its output, and ẏ passes where it is positive.</summary>
    public bool Relu { get; } = relu;
    /// <summary>With <see cref="Relu"/>, the forward's output y (a constant: the mask y &gt; 0 is piecewise constant).</summary>
    public NdArray? Mask { get; init; }
    /// <summary>The moments of x when the forward that normalized it computed them.</summary>
    internal GroupMoments? Known { get; init; }
    /// <inheritdoc/>
    public override string Name => Relu ? "normalize_scale_shift_relu_jvp" : "normalize_scale_shift_jvp";

    private static bool HasAddend(int inputs) => inputs == 7;

    private NdArray MaskArray => Mask ?? throw new InvalidOperationException("normalize_scale_shift_jvp: a clamped tangent needs the forward's output as its mask.");

    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x)
    {
        if (x.Length is not (6 or 7)) throw new ArgumentException($"normalize_scale_shift_jvp: {x.Length} inputs; expected (x, γ, β, ẋ, γ̇, β̇) or (x, γ, β, ẋ, γ̇, β̇, ż).");
        var (mean, variance) = GroupMoments.Of(Known, x[0], GroupStart, GroupEnd);
        var rows = x[0].ScaleShiftTangent(x[3], x[1], x[2], x[4], x[5], mean, variance, GroupStart, GroupEnd, Epsilon);
        var scale = rows.Rows(NormalizeScaleShiftTangent.ScaleRow, 1);
        var scaleDot = rows.Rows(NormalizeScaleShiftTangent.ScaleTangentRow, 1);
        var shiftDot = rows.Rows(NormalizeScaleShiftTangent.ShiftTangentRow, 1);
        var yDot = x[3].ScaleShift(scale, shiftDot, x[0], scaleDot, GroupStart, GroupEnd, HasAddend(x.Length) ? x[6] : null);
        return Relu ? MaskArray.Apply(BinaryOp.MaskPositive, yDot) : yDot;
    }
    /// <inheritdoc/>
    protected internal override long Flops(NdArray[] x, NdArray y) => (HasAddend(x.Length) ? 9 : 8) * y.Size;

    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y) => ReferenceJvp(Reference, x, xDot);

    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed) => Bars(x, yBar, needed, null);

    /// <inheritdoc/>
    /// <remarks>ẋ̄ = g·a + x·k + c + the sum so far in one scale-shift pass.</remarks>
    protected internal override Tensor?[] VjpAccumulating(Tensor[] x, Tensor y, Tensor yBar, bool[] needed, Tensor?[] partial) =>
        needed[0] || needed[1] || needed[2] ? AddPartials(Vjp(x, y, yBar, needed), partial) : AddPartials(Bars(x, yBar, needed, partial), Remaining(partial, 3));

    private Tensor?[] Bars(Tensor[] x, Tensor yBar, bool[] needed, Tensor?[]? partial)
    {
        if (needed[0] || needed[1] || needed[2]) return ReferenceVjp(Reference, x, yBar);
        var g = Relu ? ReluBackward.Instance.Apply(MaskArray, yBar) : yBar;
        var rows = new NormalizeScaleShiftBackward(GroupStart, GroupEnd, Epsilon) { Known = Known }.Apply(x[0], x[1], g);
        Tensor Row(int i) => new Row(i).Apply(rows);
        var bars = new Tensor?[x.Length];
        if (needed[3])
            bars[3] = new ScaleShift(GroupStart, GroupEnd).ApplyPlus(partial?[3], g, Row(NormalizeScaleShiftBackward.ARow), Row(NormalizeScaleShiftBackward.CRow), x[0], Row(NormalizeScaleShiftBackward.KRow));
        if (needed[4]) bars[4] = Row(NormalizeScaleShiftBackward.ProductRow).Reshape(x[4].Shape);
        if (needed[5]) bars[5] = Row(NormalizeScaleShiftBackward.SumRow).Reshape(x[5].Shape);
        if (HasAddend(x.Length) && needed[6]) bars[6] = g;
        return bars;
    }

    /// <summary>The same tangent op by op: what the rules differentiate and tests compare the kernels with.</summary>
    public Tensor Reference(Tensor[] p)
    {
        var rows = new NormalizeScaleShiftTangent(GroupStart, GroupEnd, Epsilon).Apply(p[0], p[1], p[2], p[3], p[4], p[5]);
        Tensor scale = new Row(NormalizeScaleShiftTangent.ScaleRow).Apply(rows);
        Tensor scaleDot = new Row(NormalizeScaleShiftTangent.ScaleTangentRow).Apply(rows), shiftDot = new Row(NormalizeScaleShiftTangent.ShiftTangentRow).Apply(rows);
        var affine = new ScaleShift(GroupStart, GroupEnd);
        var yDot = HasAddend(p.Length) ? affine.Apply(p[3], scale, shiftDot, p[0], scaleDot, p[6]) : affine.Apply(p[3], scale, shiftDot, p[0], scaleDot);
        return Relu ? ReluBackward.Instance.Apply(MaskArray, yDot) : yDot;
    }
}
