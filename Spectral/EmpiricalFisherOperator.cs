using Curvature.Engine;
using Curvature.Models;

namespace Curvature.Spectral;

/// <summary>
/// The empirical Fisher F = (1/N)·Σᵢ gᵢgᵢᵀ of a batch, gᵢ = ∇ℓᵢ the per-example gradients of its loss (the term
/// the batch mean averages; under training-mode BatchNorm, ℓᵢ's gradient through the batch's statistics): products
/// Fv = (1/N)·Σᵢ gᵢ(gᵢᵀv) from the N gradients, computed once and held (N × parameters values). Unlike the Fisher
/// of the model's predictive distribution it uses the data's labels, and it is not a curvature in general (Kunstner
/// et al. 2019, "Limitations of the empirical Fisher approximation"); it is here because optimizers and papers use it.
/// </summary>
public sealed class EmpiricalFisherOperator : ILinearOperator
{
    private readonly NdArray[] gradients;

    /// <summary>Computes the per-example gradients of <paramref name="model"/>'s loss on the batch.</summary>
    public EmpiricalFisherOperator(Module model, string loss, NdArray inputs, NdArray labels, bool training)
    {
        var noise = new GradientNoise(model, loss, inputs, labels, training);
        gradients = noise.ExampleGradients().SelectMany(c => Enumerable.Range(0, c.Gradients.Shape[0]).Select(r => c.Gradients.Rows(r, 1).Reshape(c.Gradients.Shape[1]))).ToArray();
        Dimension = gradients[0].Size;
        DType = gradients[0].DType;
        Device = gradients[0].Device;
    }

    /// <summary>Examples whose gradients it holds.</summary>
    public int Count => gradients.Length;

    /// <inheritdoc/>
    public long Dimension { get; }

    /// <inheritdoc/>
    public DType DType { get; }

    /// <inheritdoc/>
    public Device Device { get; }

    /// <inheritdoc/>
    public NdArray Apply(NdArray v)
    {
        var dots = NdArray.Dots(gradients, v);
        for (int i = 0; i < dots.Length; i++) dots[i] /= gradients.Length;
        return NdArray.LinearCombination(gradients, dots);
    }
}
