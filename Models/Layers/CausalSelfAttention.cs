using Curvature.Autodiff;
using Curvature.Engine;

namespace Curvature.Models.Layers;

/// <summary>
/// Causal multi-head self-attention with nanoGPT's names: <c>c_attn</c> projects [B, T, d] to q, k, v (in that
/// order along the last axis), each split into heads of d/heads; scores q·kᵀ/√(d/heads) with positions after
/// the query masked out; softmax over keys; attention dropout; heads merged and projected by <c>c_proj</c>;
/// residual dropout (Vaswani et al. 2017; Radford et al. 2019). Composed of primitives (batched matmul, where,
/// log-softmax), so gradients and HVPs through the scores, the softmax and the mask are exact.
/// </summary>
public sealed class CausalSelfAttention : Module
{
    private readonly Dropout attentionDropout, residualDropout;
    private readonly Dictionary<(int T, DType DType, Device Device), (Tensor Mask, Tensor Fill)> masks = [];

    /// <summary>Attention of width <paramref name="dim"/> split into <paramref name="heads"/> heads.</summary>
    public CausalSelfAttention(int dim, int heads, RandomGenerator rng, double dropout = 0, bool bias = true, DType dtype = DType.Float32)
    {
        if (heads < 1 || dim % heads != 0) throw new ArgumentException($"attention: width {dim} with {heads} heads; expected heads ≥ 1 dividing the width.");
        Dim = dim;
        Heads = heads;
        Projection = AddModule("c_attn", new Linear(dim, 3 * dim, rng, bias, dtype));
        Output = AddModule("c_proj", new Linear(dim, dim, rng, bias, dtype));
        attentionDropout = new Dropout(dropout);
        residualDropout = new Dropout(dropout);
    }

    /// <summary>The model width d.</summary>
    public int Dim { get; }

    /// <summary>The number of heads.</summary>
    public int Heads { get; }

    /// <summary>The q, k, v projection <c>c_attn</c>, [3d, d].</summary>
    public Linear Projection { get; }

    /// <summary>The output projection <c>c_proj</c>, [d, d].</summary>
    public Linear Output { get; }

    /// <inheritdoc/>
    public override Tensor Forward(Bindings b, Tensor x)
    {
        if (x.Rank != 3 || x.Shape[2] != Dim) throw new ArgumentException($"attention: input {x.Shape}; expected [B, T, {Dim}].");
        int n = x.Shape[0], t = x.Shape[1], hd = Dim / Heads;
        var qkv = Projection.Forward(b, x);
        Tensor Head(int part) => qkv.Slice(2, part * Dim, Dim).Reshape(n, t, Heads, hd).Permute(0, 2, 1, 3);
        var (q, k, v) = (Head(0), Head(1), Head(2));
        var scores = q.MatMul(k, transB: true) * (1 / Math.Sqrt(hd));
        var (mask, fill) = CausalMask(t, x.DType, x.Device);
        var p = attentionDropout.Forward(b, Tensor.Where(mask, scores, fill).Softmax());
        var y = p.MatMul(v).Permute(0, 2, 1, 3).Reshape(n, t, Dim);
        return residualDropout.Forward(b, Output.Forward(b, y));
    }

    /// <summary>
    /// The [T, T] mask (1 where key ≤ query) and the fill for masked scores. The fill is a large finite negative
    /// rather than −∞: exp underflows to exactly 0 either way, and no ∞ − ∞ can appear in any derivative.
    /// </summary>
    private (Tensor Mask, Tensor Fill) CausalMask(int t, DType dtype, Device device)
    {
        lock (masks)
        {
            if (masks.TryGetValue((t, dtype, device), out var m)) return m;
            var ones = new float[t * t];
            for (int i = 0; i < t; i++)
                for (int j = 0; j <= i; j++) ones[i * t + j] = 1;
            m = (Tensor.Constant(NdArray.FromArray(ones, new Shape(t, t), device).Cast(dtype)), Tensor.Constant(NdArray.Scalar(-1e9, dtype, device)));
            masks[(t, dtype, device)] = m;
            return m;
        }
    }
}
