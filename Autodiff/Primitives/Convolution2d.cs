using Curvature.Engine;
using Curvature.Kernels.Cpu;

namespace Curvature.Autodiff.Primitives;

/// <summary>Which member of the convolution family a <see cref="Convolution2d"/> computes.</summary>
public enum ConvolutionRole
{
    /// <summary>y = F(x, w), the convolution (cross-correlation) itself.</summary>
    Forward,
    /// <summary>x̄ = F(·, w)ᵀ ȳ: inputs (ȳ, w).</summary>
    InputAdjoint,
    /// <summary>w̄ = F(x, ·)ᵀ ȳ: inputs (x, ȳ).</summary>
    WeightAdjoint,
}

/// <summary>
/// The 2-D convolution and its two adjoints, a family closed under differentiation like MatMul with its
/// transposes. Each member is bilinear, so its JVP is f(ȧ, b) + f(a, ḃ); the VJPs map into the family through
/// ⟨F(x, w), g⟩ = ⟨x, IA(g, w)⟩ = ⟨w, WA(x, g)⟩: for F, x̄ = IA(ȳ, w) and w̄ = WA(x, ȳ); for IA(g, w), ḡ = F(z̄, w)
/// and w̄ = WA(z̄, g); for WA(x, g), x̄ = IA(g, V̄) and ḡ = F(x, V̄). The kernels pack im2col columns on the fly
/// (<see cref="Convolution"/>), so no column matrix is materialised in any order of derivative.
/// </summary>
public sealed class Convolution2d(ConvolutionRole role, ConvolutionGeometry geometry) : Primitive
{
    /// <summary>Which member.</summary>
    public ConvolutionRole Role { get; } = role;
    /// <summary>Shapes, stride and padding.</summary>
    public ConvolutionGeometry Geometry { get; } = geometry;
    /// <inheritdoc/>
    public override string Name => Role switch
    {
        ConvolutionRole.Forward => "conv2d",
        ConvolutionRole.InputAdjoint => "conv2d_input_grad",
        _ => "conv2d_weight_grad",
    };

    private Tensor F(Tensor x, Tensor w) => new Convolution2d(ConvolutionRole.Forward, Geometry).Apply(x, w);
    private Tensor IA(Tensor g, Tensor w) => new Convolution2d(ConvolutionRole.InputAdjoint, Geometry).Apply(g, w);
    private Tensor WA(Tensor x, Tensor g) => new Convolution2d(ConvolutionRole.WeightAdjoint, Geometry).Apply(x, g);

    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => Role switch
    {
        ConvolutionRole.Forward => x[0].Conv2d(x[1], Geometry.Stride, Geometry.Padding),
        ConvolutionRole.InputAdjoint => x[0].Conv2dInputGradient(x[1], Geometry),
        _ => x[0].Conv2dWeightGradient(x[1], Geometry),
    };

    /// <inheritdoc/>
    protected internal override long Flops(NdArray[] x, NdArray y) => 2L * Geometry.N * Geometry.O * Geometry.Q * Geometry.K;

    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y)
    {
        Tensor Same(Tensor a, Tensor b) => new Convolution2d(Role, Geometry).Apply(a, b);
        return AddOrNull(xDot[0] is null ? null : Same(xDot[0]!, x[1]), xDot[1] is null ? null : Same(x[0], xDot[1]!));
    }

    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed) => Role switch
    {
        ConvolutionRole.Forward => [needed[0] ? IA(yBar, x[1]) : null, needed[1] ? WA(x[0], yBar) : null],
        ConvolutionRole.InputAdjoint => [needed[0] ? F(yBar, x[1]) : null, needed[1] ? WA(yBar, x[0]) : null],
        _ => [needed[0] ? IA(x[1], yBar) : null, needed[1] ? F(x[0], yBar) : null],
    };
}
