using Curvature.Engine;

namespace Curvature.Spectral;

/// <summary>
/// The damped K-FAC inverse as a preconditioner on per-parameter gradients: for a Kronecker block
/// [∇W | ∇b] ↦ (G + √λ I)⁻¹·[∇W | ∇b]·(A + √λ I)⁻¹ (the inverse of <see cref="KroneckerFactoredCurvature"/>'s damped
/// block, exactly), for a normalization channel (F_c + λI)⁻¹·(∇γ_c, ∇β_c) (closed form), for an embedding
/// diag(f + √λ)⁻¹·∇W·(G + √λ I)⁻¹. A parameter no block covers keeps its gradient; one two layers share (the GPT's
/// tied table) takes the first block's inverse, since the inverse of a sum of Kronecker products has no factored form.
/// EKFAC's blocks invert in the eigenbasis: [∇W | ∇b] ↦ U_G((U_Gᵀ[∇W | ∇b]U_A) / (S + λ))U_Aᵀ, an embedding's
/// ∇W ↦ ((∇W·U_G) / (S + λ))·U_Gᵀ.
/// Its arrays are plain (<see cref="Blocks"/>), so an optimizer checkpoints and restores it exactly.
/// </summary>
public sealed class KfacPreconditioner
{
    /// <summary>Kinds of <see cref="Block"/>.</summary>
    public const int Kronecker = 0, Normalization = 1, Embedding = 2, Eigenbasis = 3, EmbeddingEigenbasis = 4;

    /// <summary>
    /// One block's inverse: <paramref name="Kind"/>, the parameter indices it acts on (<paramref name="Second"/> −1
    /// when none) and its arrays: Kronecker (A + √λ)⁻¹, (G + √λ)⁻¹; normalization the inverse 2×2's entries
    /// i₁₁, i₁₂, i₂₂ ([C] each); embedding 1/(f + √λ) and (G + √λ)⁻¹; eigenbasis U_A, U_G and 1/(S + λ); embedding
    /// eigenbasis U_G and 1/(S + λ).
    /// </summary>
    public sealed record Block(int Kind, int First, int Second, NdArray A, NdArray B, NdArray? C = null);

    /// <summary>A preconditioner of these blocks.</summary>
    public KfacPreconditioner(IReadOnlyList<Block> blocks) => Blocks = blocks;

    /// <summary>The blocks, in forward order.</summary>
    public IReadOnlyList<Block> Blocks { get; }

    /// <summary>The preconditioned gradients, one array per parameter (new arrays where a block acts; the given ones elsewhere).</summary>
    public NdArray[] Apply(IReadOnlyList<NdArray> gradients)
    {
        var result = gradients.ToArray();
        var done = new bool[gradients.Count];
        foreach (var b in Blocks)
        {
            if (done[b.First]) continue;
            switch (b.Kind)
            {
                case Kronecker or Eigenbasis:
                {
                    // A weight as [out, in] (a convolution's as [O, C·kh·kw]), the bias as one more column.
                    var shape = gradients[b.First].Shape;
                    var weight = gradients[b.First].Reshape(shape[0], -1);
                    int inFeatures = weight.Shape[1];
                    var block = b.Second < 0 ? weight : NdArray.Concat([weight, gradients[b.Second].Reshape(-1, 1)], 1);
                    var p = b.Kind == Kronecker ? b.B.MatMul(block).MatMul(b.A)
                        : InEigenbasis(block, b.A, b.B, b.C!);
                    result[b.First] = (b.Second < 0 ? p : p.Slice(1, 0, inFeatures)).Reshape(shape);
                    if (b.Second >= 0) result[b.Second] = p.Slice(1, inFeatures, 1).Reshape(-1);
                    break;
                }
                case Normalization:
                {
                    var (x, y) = (gradients[b.First], gradients[b.Second]);
                    result[b.First] = b.A * x + b.B * y;
                    result[b.Second] = b.B * x + b.C! * y;
                    break;
                }
                case Embedding:
                    result[b.First] = gradients[b.First].MatMul(b.B) * b.A.Reshape(-1, 1);
                    break;
                case EmbeddingEigenbasis:
                    result[b.First] = InEigenbasis(gradients[b.First], null, b.A, b.B);
                    break;
                default: throw new InvalidOperationException($"kfac: unknown block kind {b.Kind}.");
            }
            done[b.First] = true;
            if (b.Second >= 0) done[b.Second] = true;
        }
        return result;
    }

    /// <summary>
    /// U_G((U_GᵀVU_A) ∘ D)U_Aᵀ: a matrix scaled entrywise in the eigenbasis (U_G, U_A) — EKFAC's block with D = S + λ,
    /// its inverse with D = 1/(S + λ). A null <paramref name="ua"/> is the identity (an embedding's one-hot token basis),
    /// and then <paramref name="ug"/> acts on the right: (V·U_G ∘ D)·U_Gᵀ.
    /// </summary>
    internal static NdArray InEigenbasis(NdArray v, NdArray? ua, NdArray ug, NdArray d) =>
        ua is null ? (v.MatMul(ug) * d).MatMul(ug, transB: true) : ug.MatMul(ug.MatMul(v, transA: true).MatMul(ua) * d).MatMul(ua, transB: true);

    /// <summary>(M + s·I)⁻¹ of a symmetric positive semidefinite M by Cholesky in float64 (s > 0 makes it definite).</summary>
    public static NdArray DampedInverse(NdArray m, double shift)
    {
        int n = m.Shape[0];
        var a = m.ToDoubleArray();
        for (int i = 0; i < n; i++) a[i * n + i] += shift;
        // L Lᵀ = a, in place in the lower triangle.
        for (int j = 0; j < n; j++)
        {
            double d = a[j * n + j];
            for (int k = 0; k < j; k++) d -= a[j * n + k] * a[j * n + k];
            if (!(d > 0)) throw new ArithmeticException($"kfac: a damped factor is not positive definite (pivot {d:G3} at {j} of {n}); raise the damping.");
            double l = Math.Sqrt(d);
            a[j * n + j] = l;
            for (int i = j + 1; i < n; i++)
            {
                double s = a[i * n + j];
                for (int k = 0; k < j; k++) s -= a[i * n + k] * a[j * n + k];
                a[i * n + j] = s / l;
            }
        }
        // L⁻¹ by forward substitution, then (L Lᵀ)⁻¹ = L⁻ᵀ L⁻¹.
        var inv = new double[n * n];
        for (int c = 0; c < n; c++)
            for (int i = c; i < n; i++)
            {
                double s = i == c ? 1 : 0;
                for (int k = c; k < i; k++) s -= a[i * n + k] * inv[k * n + c];
                inv[i * n + c] = s / a[i * n + i];
            }
        var result = new double[n * n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j <= i; j++)
            {
                double s = 0;
                for (int k = i; k < n; k++) s += inv[k * n + i] * inv[k * n + j];
                result[i * n + j] = result[j * n + i] = s;
            }
        return NdArray.FromArray(result, new Shape(n, n)).Cast(m.DType).To(m.Device);
    }
}
