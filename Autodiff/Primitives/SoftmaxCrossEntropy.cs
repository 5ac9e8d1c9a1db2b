using Curvature.Engine;

namespace Curvature.Autodiff.Primitives;

/// <summary>
/// L = (1/N) Σₙ (log Σ_c exp xₙc − xₙ,labelₙ): the mean cross-entropy of [N, C] logits, fused. Its gradient
/// g = (softmax x − onehot)/N is the primitive <see cref="SoftmaxCrossEntropyBackward"/>, so second
/// derivatives go through that primitive's own rules. JVP: L̇ = Σ g ⊙ ẋ. VJP: x̄ = L̄ · g.
/// </summary>
public sealed class SoftmaxCrossEntropy : Primitive
{
    /// <summary>The op (stateless).</summary>
    public static readonly SoftmaxCrossEntropy Instance = new();
    /// <inheritdoc/>
    public override string Name => "softmax_cross_entropy";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => x[0].CrossEntropy(x[1]);
    private static Tensor Gradient(Tensor[] x) => SoftmaxCrossEntropyBackward.Instance.Apply(x[0], x[1].Detach());
    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y) =>
        xDot[0] is null ? null : (Gradient(x) * xDot[0]!).Sum();
    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed) =>
        [needed[0] ? yBar * Gradient(x) : null, null];
}
