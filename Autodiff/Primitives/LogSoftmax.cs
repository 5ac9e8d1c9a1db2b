using Curvature.Engine;

namespace Curvature.Autodiff.Primitives;

/// <summary>
/// y = x − log Σ exp x over the last axis; s = exp y is the softmax. JVP: ẏ = ẋ − Σ(s ⊙ ẋ).
/// VJP: x̄ = ȳ − s ⊙ Σ ȳ (sums over the last axis, kept).
/// </summary>
public sealed class LogSoftmax : Primitive
{
    /// <summary>The op (stateless).</summary>
    public static readonly LogSoftmax Instance = new();
    /// <inheritdoc/>
    public override string Name => "log_softmax";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => x[0].LogSoftmax();
    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y) =>
        xDot[0] is null ? null : xDot[0]! - (y.Exp() * xDot[0]!).Sum([-1], true);
    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed) =>
        [yBar - y.Exp() * yBar.Sum([-1], true)];
}
