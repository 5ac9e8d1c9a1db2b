using Curvature.Autodiff;
using Curvature.Engine;

namespace Curvature.Models.Layers;

/// <summary>
/// Layer normalization over the last axis (Ba, Kiros and Hinton 2016), as PyTorch's nn.LayerNorm:
/// y = (x − μ)/√(σ² + ε) ⊙ weight + bias with the biased variance σ², ε = 1e-5, weight initialized to 1 and bias
/// to 0. The normalization is the fused <see cref="Autodiff.Primitives.Normalize"/> primitive (groups = all axes
/// but the last), whose rules make gradients and Hessian-vector products exact to every order.
/// </summary>
public sealed class LayerNorm : Module
{
    /// <summary>A layer over <paramref name="features"/> features.</summary>
    public LayerNorm(int features, double epsilon = 1e-5, DType dtype = DType.Float32)
    {
        Epsilon = epsilon;
        Weight = AddParameter("weight", NdArray.Ones(new Shape(features), dtype));
        Bias = AddParameter("bias", NdArray.Zeros(new Shape(features), dtype));
    }

    /// <summary>ε.</summary>
    public double Epsilon { get; }

    /// <summary>The scale, [features].</summary>
    public Parameter Weight { get; }

    /// <summary>The shift, [features].</summary>
    public Parameter Bias { get; }

    /// <inheritdoc/>
    public override Tensor Forward(Bindings b, Tensor x)
    {
        if (x.Shape[^1] != Weight.Shape[0]) throw new ArgumentException($"layer_norm: input {x.Shape} has {x.Shape[^1]} features; expected {Weight.Shape[0]}.");
        var xHat = x.Normalize(0, x.Rank - 1, Epsilon);
        var y = xHat * b[Weight] + b[Bias];
        return b.Tap is { } tap ? tap(this, xHat, y) : y;
    }
}
