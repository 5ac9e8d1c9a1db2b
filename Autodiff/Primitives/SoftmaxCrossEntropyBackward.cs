using Curvature.Engine;

namespace Curvature.Autodiff.Primitives;

/// <summary>
/// g = (s − onehot(labels)) / N with s = softmax(x) row-wise: the gradient of the mean cross-entropy, computed
/// in one pass. Its Jacobian (diag s − s sᵀ)/N per row is symmetric, so JVP and VJP share one formula:
/// ġ = s ⊙ (ẋ − Σ s ⊙ ẋ) / N and x̄ = s ⊙ (ḡ − Σ s ⊙ ḡ) / N (sums over the last axis, kept).
/// </summary>
public sealed class SoftmaxCrossEntropyBackward : Primitive
{
    /// <summary>The op (stateless).</summary>
    public static readonly SoftmaxCrossEntropyBackward Instance = new();
    /// <inheritdoc/>
    public override string Name => "softmax_cross_entropy_backward";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => x[0].CrossEntropyGradient(x[1]);
    private static Tensor Apply(Tensor logits, Tensor v)
    {
        var s = logits.LogSoftmax().Exp();
        return s * (v - (s * v).Sum([-1], true)) * (1.0 / logits.Shape[0]);
    }
    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y) => xDot[0] is null ? null : Apply(x[0], xDot[0]!);
    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed) => [needed[0] ? Apply(x[0], yBar) : null, null];
}
