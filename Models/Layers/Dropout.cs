using Curvature.Autodiff;
using Curvature.Engine;
using Curvature.Kernels.Cpu;
using Curvature.Kernels;

namespace Curvature.Models.Layers;

/// <summary>
/// Inverted dropout as PyTorch's nn.Dropout: in training, each element is zeroed with probability p and the
/// survivors scaled by 1/(1 − p), so evaluation is the identity. Active only when the bindings carry a noise
/// source (<see cref="Bindings.Noise"/>), so curvature probes see a deterministic loss. The mask is a constant:
/// gradients and HVPs differentiate the thinned network exactly.
/// </summary>
public sealed class Dropout : Module
{
    /// <summary>A dropout layer with drop probability <paramref name="p"/> in [0, 1).</summary>
    public Dropout(double p)
    {
        if (!(p >= 0 && p < 1)) throw new ArgumentException($"dropout: probability {p}; expected a value in [0, 1).");
        P = p;
    }

    /// <summary>The drop probability.</summary>
    public double P { get; }

    /// <inheritdoc/>
    public override Tensor Forward(Bindings b, Tensor x)
    {
        if (P == 0 || !b.Training || b.Noise is null) return x;
        var u = b.Noise.Uniform(x.Shape, dtype: x.DType, device: x.Device);
        var keep = u.Apply(BinaryOp.GreaterEqual, P) * (1 / (1 - P));
        return x * Tensor.Constant(keep);
    }
}
