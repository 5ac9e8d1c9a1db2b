using Curvature.Autodiff;
using Curvature.Engine;

namespace Curvature.Models;

/// <summary>The losses of MODELS.md by name, and loss functions of a module's parameters.</summary>
public static class Loss
{
    /// <summary>The loss names accepted on the command line.</summary>
    public static readonly string[] Names = ["mse", "ce"];

    /// <summary>
    /// The named loss of outputs [N, C] against int64 labels [N]; sequence outputs [N, T, C] against labels
    /// [N, T] are flattened, so the loss is averaged over positions too (MODELS.md's <c>ce</c> for <c>gpt</c>).
    /// </summary>
    public static Tensor Of(string name, Tensor outputs, Tensor labels)
    {
        if (outputs.Rank == 3 && labels.Rank == 2)
        {
            if (labels.Shape[0] != outputs.Shape[0] || labels.Shape[1] != outputs.Shape[1])
                throw new ArgumentException($"{name}: outputs {outputs.Shape} and labels {labels.Shape}; expected labels [N, T] of the outputs' first two axes.");
            outputs = outputs.Reshape(-1, outputs.Shape[2]);
            labels = labels.Reshape(-1);
        }
        return OfRows(name, outputs, labels);
    }

    private static Tensor OfRows(string name, Tensor outputs, Tensor labels) => name switch
    {
        "mse" => Losses.MeanSquaredError(outputs, labels),
        "ce" => Losses.CrossEntropy(outputs, labels),
        _ => throw new ArgumentException($"loss '{name}' is not one of mse, ce."),
    };

    /// <summary>
    /// L(p) on a fixed batch as a function of the module's parameter tensors (in <see cref="Module.Parameters"/>
    /// order), ready for Grad, Hvp and the spectral operators.
    /// </summary>
    public static Func<Tensor[], Tensor> Function(Module model, string name, NdArray inputs, NdArray labels, bool training = false)
    {
        var ps = model.Parameters();
        Tensor x = inputs, y = labels;
        return p => Of(name, model.Forward(new Bindings(ps, p, training), x), y);
    }
}
