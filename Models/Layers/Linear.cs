using Curvature.Autodiff;
using Curvature.Engine;

namespace Curvature.Models.Layers;

/// <summary>y = x·Wᵀ + b with W [out, in] as in PyTorch; initialized uniform on ±1/√in (PyTorch's default).</summary>
public sealed class Linear : Module
{
    /// <summary>A layer with fresh weights drawn from <paramref name="rng"/>.</summary>
    public Linear(int inFeatures, int outFeatures, RandomGenerator rng, bool bias = true, DType dtype = DType.Float32)
    {
        double bound = 1 / Math.Sqrt(inFeatures);
        Weight = AddParameter("weight", rng.Uniform(new Shape(outFeatures, inFeatures), -bound, bound, dtype));
        Bias = bias ? AddParameter("bias", rng.Uniform(new Shape(outFeatures), -bound, bound, dtype)) : null;
    }

    /// <summary>
    /// A layer over existing parameters: weight tying registers the same <see cref="Parameter"/> under this
    /// layer's names too (GPT's <c>lm_head.weight</c> is <c>transformer.wte.weight</c>).
    /// </summary>
    public Linear(Parameter weight, Parameter? bias = null)
    {
        if (weight.Shape.Rank != 2) throw new ArgumentException($"linear: weight {weight.Shape}; expected [out, in].");
        if (bias is not null && bias.Shape != new Shape(weight.Shape[0]))
            throw new ArgumentException($"linear: bias {bias.Shape} for weight {weight.Shape}; expected [{weight.Shape[0]}].");
        Weight = AddParameter("weight", weight);
        Bias = bias is null ? null : AddParameter("bias", bias);
    }

    /// <summary>W, [out, in].</summary>
    public Parameter Weight { get; }

    /// <summary>b, [out], or null.</summary>
    public Parameter? Bias { get; }

    /// <inheritdoc/>
    public override Tensor Forward(Bindings b, Tensor x)
    {
        var flat = x.Rank == 2 ? x : x.Reshape(-1, x.Shape[^1]);
        var y = flat.MatMul(b[Weight], transB: true);
        if (Bias is not null) y = y + b[Bias];
        if (b.Tap is { } tap) y = tap(this, flat, y);
        return x.Rank == 2 ? y : y.Reshape([.. x.Shape.Take(x.Rank - 1), Weight.Shape[0]]);
    }
}
