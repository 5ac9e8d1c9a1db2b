using Curvature.Autodiff;
using Curvature.Autodiff.Primitives;
using Curvature.Engine;
using Curvature.Models;

namespace Curvature.Spectral;

/// <summary>
/// The generalized Gauss-Newton matrix G = Jᵀ H_L J (Schraudolph 2002) of a loss L(f(w)) on a fixed batch, as an
/// operator on the flattened parameters: J·v by forward mode through the model, H_L (the loss's Hessian with
/// respect to the outputs) applied exactly, Jᵀ by reverse mode. For the mean cross-entropy
/// H_L u = (s ⊙ (u − Σ s ⊙ u))/N per row (the tangent of the fused softmax cross-entropy backward); for the MSE
/// of MODELS.md H_L = I/N. G is positive semi-definite and equals the Hessian when the model is linear in w.
/// </summary>
public sealed class GaussNewtonOperator : ILinearOperator
{
    private readonly Func<Tensor[], Tensor> outputs;
    private readonly string loss;
    private readonly NdArray labels;
    private readonly Tensor[] parameters;
    private readonly Shape[] shapes;

    /// <summary>G for the model outputs <paramref name="outputs"/>(w) [N, C] under the named loss (mse or ce).</summary>
    public GaussNewtonOperator(Func<Tensor[], Tensor> outputs, string loss, NdArray labels, IReadOnlyList<NdArray> parameters)
    {
        if (loss is not ("mse" or "ce")) throw new ArgumentException($"gauss-newton: loss '{loss}' is not one of mse, ce.");
        this.outputs = outputs;
        this.loss = loss;
        this.labels = labels;
        this.parameters = parameters.Select(p => (Tensor)p).ToArray();
        shapes = parameters.Select(p => p.Shape).ToArray();
        Dimension = shapes.Sum(s => s.Size);
        DType = parameters[0].DType;
        Device = parameters[0].Device;
    }

    /// <summary>G for a module's outputs on a batch.</summary>
    public static GaussNewtonOperator ForModel(Module model, string loss, NdArray inputs, NdArray labels, bool training = false)
    {
        var ps = model.Parameters();
        Tensor x = inputs;
        return new GaussNewtonOperator(p => model.Forward(new Bindings(ps, p, training), x), loss, labels, ps.Select(p => p.Data).ToArray());
    }

    /// <inheritdoc/>
    public long Dimension { get; }

    /// <inheritdoc/>
    public DType DType { get; }

    /// <inheritdoc/>
    public Device Device { get; }

    /// <inheritdoc/>
    public NdArray Apply(NdArray v)
    {
        var parts = Vectors.Unflatten(v, shapes).Select(p => (Tensor)p).ToArray();
        var (o, jv) = Derivatives.Jvp(outputs, parameters, parts);
        Tensor hjv = loss == "ce"
            ? Derivatives.Jvp(z => SoftmaxCrossEntropyBackward.Instance.Apply(z, labels), o, jv).Tangent
            : jv * (1.0 / o.Shape[0]);
        var (_, bars) = Derivatives.Vjp(outputs, parameters, hjv.Detach());
        return Vectors.Flatten(bars.Select(b => b.Data).ToArray());
    }
}
