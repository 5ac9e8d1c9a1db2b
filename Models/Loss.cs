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
    /// The per-example losses ℓ [N] whose mean is <see cref="Of"/>'s loss: for rows, each example's cross-entropy
    /// −log softmax(z)_y or squared error ½Σ_c(z_c − onehot(y)_c)²; for sequences [N, T, C], each sequence's mean over
    /// its positions (the batch loss averages over positions, so it is the mean of these too).
    /// </summary>
    public static Tensor PerExample(string name, Tensor outputs, Tensor labels)
    {
        if (outputs.Rank == 3 && labels.Rank == 2)
        {
            if (labels.Shape[0] != outputs.Shape[0] || labels.Shape[1] != outputs.Shape[1])
                throw new ArgumentException($"{name}: outputs {outputs.Shape} and labels {labels.Shape}; expected labels [N, T] of the outputs' first two axes.");
            int n = outputs.Shape[0], t = outputs.Shape[1];
            return PerRow(name, outputs.Reshape(-1, outputs.Shape[2]), labels.Reshape(-1)).Reshape(n, t).Mean([1]);
        }
        return PerRow(name, outputs, labels);
    }

    private static Tensor PerRow(string name, Tensor outputs, Tensor labels)
    {
        if (outputs.Rank != 2 || labels.Rank != 1 || labels.Shape[0] != outputs.Shape[0])
            throw new ArgumentException($"{name}: outputs {outputs.Shape} and labels {labels.Shape}; expected [N, C] and [N].");
        outputs.Data.CheckLogitsAndLabels(name, labels.Data);
        Tensor onehot = SoftmaxLossOps.OneHot(labels.Data, outputs.Shape[1], outputs.DType);
        return name switch
        {
            "ce" => -(outputs.LogSoftmax() * onehot).Sum([1]),
            "mse" => ((outputs - onehot).Square().Sum([1])) * 0.5,
            _ => throw new ArgumentException($"loss '{name}' is not one of mse, ce."),
        };
    }

    /// <summary>The per-example losses on a fixed batch as a function of the module's parameter tensors (see <see cref="PerExample"/>).</summary>
    public static Func<Tensor[], Tensor> PerExampleFunction(Module model, string name, NdArray inputs, NdArray labels, bool training = false)
    {
        var ps = model.Parameters();
        Tensor x = inputs, y = labels;
        return p => PerExample(name, model.Forward(new Bindings(ps, p, training), x), y);
    }

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
