using Curvature.Engine;

namespace Curvature.Autodiff.Primitives;

/// <summary>
/// z = y ⊙ (g − Σ y ⊙ g) over the last axis: the softmax's Jacobian at output y (symmetric, diag(y) − y yᵀ) applied
/// to g, in one pass; the softmax's JVP and VJP. Linear in g: JVP ż = J(y)·ġ, VJP ḡ = J(y)·z̄. In y:
/// ∂z/∂y·ẏ = ẏ ⊙ (g − Σ y ⊙ g) − y ⊙ Σ(ẏ ⊙ g), and its adjoint ȳ = z̄ ⊙ (g − Σ y ⊙ g) − g ⊙ Σ(z̄ ⊙ y), written with
/// primitives.
/// </summary>
public sealed class SoftmaxJacobian : Primitive
{
    /// <summary>The op (stateless).</summary>
    public static readonly SoftmaxJacobian Instance = new();
    /// <inheritdoc/>
    public override string Name => "softmax_jacobian";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => x[0].SoftmaxJacobian(x[1]);
    /// <inheritdoc/>
    protected internal override long Flops(NdArray[] x, NdArray y) => 4 * y.Size;

    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor z)
    {
        Tensor y = x[0], g = x[1];
        var fromG = xDot[1] is null ? null : Instance.Apply(y, xDot[1]!);
        var fromY = xDot[0] is null ? null : xDot[0]! * (g - (y * g).Sum([-1], true)) - y * (xDot[0]! * g).Sum([-1], true);
        return AddOrNull(fromG, fromY);
    }

    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor z, Tensor zBar, bool[] needed)
    {
        Tensor y = x[0], g = x[1];
        return [needed[0] ? zBar * (g - (y * g).Sum([-1], true)) - g * (zBar * y).Sum([-1], true) : null,
                needed[1] ? Instance.Apply(y, zBar) : null];
    }
}
