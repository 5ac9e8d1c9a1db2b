using Curvature.Autodiff;
using Curvature.Engine;

namespace Curvature.Models.Layers;

/// <summary>
/// 2-D convolution as PyTorch's nn.Conv2d: weight [out, in, kh, kw], optional bias [out], stride and zero padding,
/// initialized uniform on ±1/√(in·kh·kw) (PyTorch's default). Computed by the <see cref="Autodiff.Primitives.Convolution2d"/>
/// primitive family, whose rules give exact gradients and Hessian-vector products. Supports the bindings' Tap
/// hook (input [N, C, H, W], output [N, O, OH, OW]) for K-FAC.
/// </summary>
public sealed class Conv2d : Module
{
    /// <summary>A convolution with fresh weights drawn from <paramref name="rng"/>.</summary>
    public Conv2d(int inChannels, int outChannels, int kernel, RandomGenerator rng, int stride = 1, int padding = 0, bool bias = true, DType dtype = DType.Float32)
    {
        if (inChannels < 1 || outChannels < 1 || kernel < 1 || stride < 1 || padding < 0)
            throw new ArgumentException($"conv2d: channels {inChannels}→{outChannels}, kernel {kernel}, stride {stride}, padding {padding}; expected positive sizes.");
        Stride = stride;
        Padding = padding;
        double bound = 1 / Math.Sqrt(inChannels * kernel * kernel);
        Weight = AddParameter("weight", rng.Uniform(new Shape(outChannels, inChannels, kernel, kernel), -bound, bound, dtype));
        Bias = bias ? AddParameter("bias", rng.Uniform(new Shape(outChannels), -bound, bound, dtype)) : null;
    }

    /// <summary>The kernels, [out, in, kh, kw].</summary>
    public Parameter Weight { get; }

    /// <summary>The bias, [out], or null (ResNet's convolutions have none).</summary>
    public Parameter? Bias { get; }

    /// <summary>Stride.</summary>
    public int Stride { get; }

    /// <summary>Zero padding on each side.</summary>
    public int Padding { get; }

    /// <inheritdoc/>
    public override Tensor Forward(Bindings b, Tensor x)
    {
        var y = x.Conv2d(b[Weight], Stride, Padding);
        if (Bias is not null) y = y + b[Bias].Reshape(1, -1, 1, 1);
        return b.Tap is { } tap ? tap(this, x, y) : y;
    }
}
