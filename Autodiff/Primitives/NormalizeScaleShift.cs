using Curvature.Engine;

namespace Curvature.Autodiff.Primitives;

/// <summary>
/// y = x̂·γ + β (+ z) (then max(·, 0) with <see cref="Relu"/>), x̂ = (x − μ)·r the per-group normalization of
/// <see cref="Normalize"/> and γ, β one value per group: BatchNorm in training mode, with a ResNet block's residual add
/// and ReLU, as <see cref="ScaleShift"/> of <see cref="Normalize"/> but without x̂ in memory. Inputs (x, γ, β) or
/// (x, γ, β, z). The forward takes the moments in one read pass and writes y = x·s + t in one more, s = γ·r and
/// t = β − μ·s, as PyTorch's CPU kernel does (in float32 that rounds y by about 6e-8·|μ|/σ, where x̂ first would round
/// it by 6e-8); x̂ is never written, which also saves its memory. Its rules reuse the moments that pass computed,
/// through fused primitives whose own rules are exact (so nested derivatives are too). With C(a, b) the per-group covariance (<see cref="GroupCovariance"/>), m the group size:
/// JVP: μ̇ = mean ẋ and ṙ = −r³·C(ẋ, x) give ṡ = γ̇·r + γ·ṙ and ṫ = β̇ − μ̇·s − μ·ṡ (one pass and one small kernel:
/// <see cref="NormalizeScaleShiftTangent"/>), and ẏ = ẋ·s + x·ṡ + ṫ + ż, one two-pair scale-shift (masked where y = 0
/// with the ReLU).
/// VJP, g = ȳ masked likewise: β̄ = Σg, γ̄ = m·r·C(g, x) (= Σ g·x̂), z̄ = g, and x̄ = γ·J(x)·g
/// = γr·(g − mean g − x̂·mean(g·x̂)) = g·(γr) + x·k + (−γr·mean g − μ·k) with k = −γr³·C(g, x): one two-pair scale-shift
/// from the statistics (Ioffe and Szegedy 2015, eq. in §3), which <see cref="NormalizeScaleShiftBackward"/> computes in one
/// read pass and one small kernel. A training-mode BatchNorm layer is then about four passes
/// over memory forward and six back, where Normalize, ScaleShift and their rules took six and fourteen.
/// </summary>
public sealed class NormalizeScaleShift(int groupStart, int groupEnd, double epsilon, bool relu = false) : Primitive
{
    /// <summary>First group axis.</summary>
    public int GroupStart { get; } = groupStart;
    /// <summary>One past the last group axis.</summary>
    public int GroupEnd { get; } = groupEnd;
    /// <summary>ε.</summary>
    public double Epsilon { get; } = epsilon;
    /// <summary>Whether the result is clamped at zero (max(·, 0)).</summary>
    public bool Relu { get; } = relu;
    /// <summary>
    /// Called with the per-group mean and biased variance (float64) each time the forward runs: BatchNorm's
    /// running-statistics update takes them from the pass that normalizes instead of reading x again.
    /// </summary>
    public Action<NdArray, NdArray>? OnMoments { get; init; }
    /// <inheritdoc/>
    public override string Name => Relu ? "normalize_scale_shift_relu" : "normalize_scale_shift";

    /// <summary>The moments of the last forward, which the rules reuse when they see the same x.</summary>
    private GroupMoments? moments;

    private static bool HasAddend(int inputs) => inputs == 4;

    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x)
    {
        if (x.Length is not (3 or 4)) throw new ArgumentException($"normalize_scale_shift: {x.Length} inputs; expected (x, γ, β) or (x, γ, β, z).");
        var (mean, variance) = x[0].GroupMoments(GroupStart, GroupEnd);
        var known = new GroupMoments(x[0], mean, variance);
        moments = known;
        OnMoments?.Invoke(mean, variance);
        // s = γ·r and t = β − μ·s in float64, rounded once to x's precision: one small kernel, then one pass.
        var coefficients = x[0].ScaleShiftCoefficients(x[1], x[2], mean, variance, GroupStart, GroupEnd, Epsilon);
        return x[0].ScaleShift(coefficients.Rows(0, 1), coefficients.Rows(1, 1), GroupStart, GroupEnd, HasAddend(x.Length) ? x[3] : null, Relu);
    }
    /// <inheritdoc/>
    protected internal override long Flops(NdArray[] x, NdArray y) => (HasAddend(x.Length) ? 6 : 5) * y.Size;


    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y)
    {
        if (xDot.All(t => t is null)) return null;
        // One primitive for ẏ = ẋ·s + x·ṡ + ṫ + ż (masked with the ReLU): the coefficients' pass over x and ẋ, then one
        // two-pair scale-shift; whole, so that its transpose is BatchNorm's own fused VJP (NormalizeScaleShiftJvp).
        Tensor Or0(int i) => xDot[i] ?? NdArray.Zeros(x[i].Shape, x[i].DType, x[i].Device);
        var jvp = new NormalizeScaleShiftJvp(GroupStart, GroupEnd, Epsilon, Relu) { Known = moments, Mask = Relu ? y.Data : null };
        return HasAddend(x.Length) && xDot[3] is { } addendDot
            ? jvp.Apply(x[0], x[1], x[2], Or0(0), Or0(1), Or0(2), addendDot)
            : jvp.Apply(x[0], x[1], x[2], Or0(0), Or0(1), Or0(2));
    }

    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed) => Bars(x, y, yBar, needed, null);

    /// <inheritdoc/>
    /// <remarks>x̄ = g·a + x·k + c + the sum so far in one scale-shift pass.</remarks>
    protected internal override Tensor?[] VjpAccumulating(Tensor[] x, Tensor y, Tensor yBar, bool[] needed, Tensor?[] partial) =>
        AddPartials(Bars(x, y, yBar, needed, partial), Remaining(partial, 0));

    private Tensor?[] Bars(Tensor[] x, Tensor y, Tensor yBar, bool[] needed, Tensor?[]? partial)
    {
        var g = Relu ? ReluBackward.Instance.Apply(y.Detach(), yBar) : yBar;
        Tensor input = x[0];
        var bars = new Tensor?[x.Length];
        var rows = new NormalizeScaleShiftBackward(GroupStart, GroupEnd, Epsilon) { Known = moments }.Apply(input, x[1], g);
        Tensor Row(int i) => new Row(i).Apply(rows);
        if (needed[0])
            bars[0] = new ScaleShift(GroupStart, GroupEnd).ApplyPlus(partial?[0], g, Row(NormalizeScaleShiftBackward.ARow), Row(NormalizeScaleShiftBackward.CRow), input, Row(NormalizeScaleShiftBackward.KRow));
        if (needed[1]) bars[1] = Row(NormalizeScaleShiftBackward.ProductRow).Reshape(x[1].Shape);
        if (needed[2]) bars[2] = Row(NormalizeScaleShiftBackward.SumRow).Reshape(x[2].Shape);
        if (HasAddend(x.Length) && needed[3]) bars[3] = g;
        return bars;
    }
}
