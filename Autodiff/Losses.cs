using Curvature.Autodiff.Primitives;
using Curvature.Engine;

namespace Curvature.Autodiff;

/// <summary>The losses of <c>interop/MODELS.md</c>, averaged over the batch.</summary>
public static class Losses
{
    /// <summary>Mean cross-entropy of [N, C] logits against [N] int64 labels (fused softmax cross-entropy).</summary>
    public static Tensor CrossEntropy(Tensor logits, Tensor labels)
    {
        logits.Data.CheckLogitsAndLabels("cross_entropy", labels.Data);
        return SoftmaxCrossEntropy.Instance.Apply(logits, labels.Detach());
    }

    /// <summary>
    /// 0.5 · Σ_c (out_c − onehot(y)_c)², averaged over the batch (Cohen et al. 2021), for [N, C] outputs and
    /// [N] int64 labels.
    /// </summary>
    public static Tensor MeanSquaredError(Tensor outputs, Tensor labels)
    {
        outputs.Data.CheckLogitsAndLabels("mse", labels.Data);
        return MeanSquaredErrorTo(outputs, SoftmaxLossOps.OneHot(labels.Data, outputs.Shape[1], outputs.DType));
    }

    /// <summary>0.5 · Σ_c (out_c − target_c)², averaged over the batch, for real-valued targets of the outputs' shape.</summary>
    public static Tensor MeanSquaredErrorTo(Tensor outputs, NdArray targets)
    {
        if (outputs.Rank != 2 || targets.Shape != outputs.Shape)
            throw new ArgumentException($"mse: outputs {outputs.Shape} and targets {targets.Shape}; expected the same [N, C] shape.");
        var r = outputs - targets;
        return (r * r).Sum() * (0.5 / outputs.Shape[0]);
    }
}
