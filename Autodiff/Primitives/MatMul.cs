using Curvature.Engine;

namespace Curvature.Autodiff.Primitives;

/// <summary>
/// C = op(A)·op(B) over the last two axes (batched over equal leading axes), op = transpose when flagged.
/// JVP: Ċ = op(Ȧ)·op(B) + op(A)·op(Ḃ). VJP (no transposes materialised): for op(A) = A, Ā = C̄·op(B)ᵀ, else
/// Ā = op(B)·C̄ᵀ; for op(B) = B, B̄ = op(A)ᵀ·C̄, else B̄ = C̄ᵀ·op(A).
/// </summary>
public sealed class MatMul(bool transA, bool transB) : Primitive
{
    /// <summary>Whether A is transposed.</summary>
    public bool TransA { get; } = transA;
    /// <summary>Whether B is transposed.</summary>
    public bool TransB { get; } = transB;
    /// <inheritdoc/>
    public override string Name => "matmul";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => x[0].MatMul(x[1], TransA, TransB);
    /// <inheritdoc/>
    protected internal override long Flops(NdArray[] x, NdArray y) => 2 * y.Size * (TransA ? x[0].Shape[^2] : x[0].Shape[^1]);
    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y) =>
        AddOrNull(xDot[0]?.MatMul(x[1], TransA, TransB), xDot[1] is null ? null : x[0].MatMul(xDot[1]!, TransA, TransB));
    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed)
    {
        Tensor a = x[0], b = x[1];
        Tensor? aBar = !needed[0] ? null : !TransA ? yBar.MatMul(b, false, !TransB) : b.MatMul(yBar, TransB, true);
        Tensor? bBar = !needed[1] ? null : !TransB ? a.MatMul(yBar, !TransA, false) : yBar.MatMul(a, true, TransA);
        return [aBar, bBar];
    }
}
