using Curvature.Engine;

namespace Curvature.Autodiff.Primitives;

/// <summary>
/// C = op(A)·op(B) over the last two axes (batched over equal leading axes), op = transpose when flagged; with a
/// second pair, inputs (A, B, A₂, B₂): C = op(A)·op(B) + op(A₂)·op(B₂), the second product accumulated in the GEMM's
/// store, which is what the JVP produces, so its two terms cost no add (the Hessian-vector product of a Transformer
/// takes three such sums per linear map).
/// JVP: Ċ = op(Ȧ)·op(B) + op(A)·op(Ḃ) per pair, two terms per call. VJP (no transposes materialized): for op(A) = A,
/// Ā = C̄·op(B)ᵀ, else Ā = op(B)·C̄ᵀ; for op(B) = B, B̄ = op(A)ᵀ·C̄, else B̄ = C̄ᵀ·op(A); the same for each pair.
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
    protected internal override NdArray Forward(NdArray[] x) => x.Length switch
    {
        2 => x[0].MatMul(x[1], TransA, TransB),
        4 => x[0].MatMulSum(x[1], x[2], x[3], TransA, TransB),
        _ => throw new ArgumentException($"matmul: {x.Length} inputs; expected 2 or 4."),
    };
    /// <inheritdoc/>
    protected internal override long Flops(NdArray[] x, NdArray y) => x.Length / 2 * 2 * y.Size * (TransA ? x[0].Shape[^2] : x[0].Shape[^1]);

    /// <inheritdoc/>
    protected internal override bool IsProduct => true;

    /// <inheritdoc/>
    protected internal override bool JvpReadsOutput => false;

    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y)
    {
        var pairs = BilinearTerms(x, xDot);
        Tensor? result = null;
        for (int i = 0; i < pairs.Count; i += 2)
            result = AddOrNull(result, i + 1 < pairs.Count
                ? Apply(pairs[i].A, pairs[i].B, pairs[i + 1].A, pairs[i + 1].B)
                : Apply(pairs[i].A, pairs[i].B));
        return result;
    }

    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed)
    {
        var bars = new Tensor?[x.Length];
        for (int p = 0; p < x.Length; p += 2)
        {
            Tensor a = x[p], b = x[p + 1];
            bars[p] = !needed[p] ? null : !TransA ? yBar.MatMul(b, false, !TransB) : b.MatMul(yBar, TransB, true);
            bars[p + 1] = !needed[p + 1] ? null : !TransB ? a.MatMul(yBar, !TransA, false) : yBar.MatMul(a, true, TransA);
        }
        return bars;
    }
}
