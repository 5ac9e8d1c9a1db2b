using Curvature.Engine;

namespace Curvature.Autodiff.Primitives;

/// <summary>
/// y = softmax(x) over the last axis, fused (attention's probabilities). With the output y:
/// JVP ẏ = y ⊙ (ẋ − Σ(y ⊙ ẋ)); VJP x̄ = y ⊙ (ȳ − Σ(y ⊙ ȳ)) (sums over the last axis, kept), both the fused
/// <see cref="SoftmaxJacobian"/>, whose own rules make higher derivatives exact.
/// </summary>
public sealed class Softmax : Primitive
{
    /// <summary>The op (stateless).</summary>
    public static readonly Softmax Instance = new();
    /// <inheritdoc/>
    public override string Name => "softmax";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => x[0].Softmax();
    /// <inheritdoc/>
    protected internal override long Flops(NdArray[] x, NdArray y) => 3 * y.Size;
    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y) =>
        xDot[0] is null ? null : SoftmaxJacobian.Instance.Apply(y, xDot[0]!);
    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed) =>
        [SoftmaxJacobian.Instance.Apply(y, yBar)];
}
