using Curvature.Engine;
using Curvature.Kernels.Cpu;
using Curvature.Kernels;

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
/// (<see cref="Convolution"/>), so no column matrix is materialized in any order of derivative. F and IA also
/// take two pairs, f(a, b) + f(a₂, b₂), so a JVP's two terms accumulate in the kernel instead of costing an add.
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

    /// <summary>Forward and input-adjoint members also take two pairs, (a, b, a₂, b₂) ↦ f(a, b) + f(a₂, b₂), accumulated in the kernel.</summary>
    private bool Pairs => Role != ConvolutionRole.WeightAdjoint;

    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => (Role, x.Length) switch
    {
        (ConvolutionRole.Forward, 2) => x[0].Conv2d(x[1], Geometry.Stride, Geometry.Padding),
        (ConvolutionRole.Forward, 4) => x[0].Conv2dSum(x[1], x[2], x[3], Geometry),
        (ConvolutionRole.InputAdjoint, 2) => x[0].Conv2dInputGradient(x[1], Geometry),
        (ConvolutionRole.InputAdjoint, 4) => x[0].Conv2dInputGradientSum(x[1], x[2], x[3], Geometry),
        (ConvolutionRole.WeightAdjoint, 2) => x[0].Conv2dWeightGradient(x[1], Geometry),
        _ => throw new ArgumentException($"{Name}: {x.Length} inputs; expected 2{(Pairs ? " or 4" : "")}."),
    };

    /// <inheritdoc/>
    protected internal override long Flops(NdArray[] x, NdArray y) => x.Length / 2 * 2L * Geometry.N * Geometry.O * Geometry.Q * Geometry.K;

    /// <inheritdoc/>
    protected internal override bool IsProduct => true;

    /// <inheritdoc/>
    protected internal override bool JvpReadsOutput => false;

    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y)
    {
        // Every non-zero term f(ȧ, b) or f(a, ḃ) is one pair; forward and input-adjoint members take two per call.
        var pairs = BilinearTerms(x, xDot);
        var member = new Convolution2d(Role, Geometry);
        Tensor? result = null;
        for (int i = 0; i < pairs.Count; i += Pairs ? 2 : 1)
            result = AddOrNull(result, Pairs && i + 1 < pairs.Count
                ? member.Apply(pairs[i].A, pairs[i].B, pairs[i + 1].A, pairs[i + 1].B)
                : member.Apply(pairs[i].A, pairs[i].B));
        return result;
    }

    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed)
    {
        var bars = new Tensor?[x.Length];
        for (int p = 0; p < x.Length; p += 2)
        {
            Tensor a = x[p], b = x[p + 1];
            bool needA = needed[p], needB = needed[p + 1];
            (bars[p], bars[p + 1]) = Role switch
            {
                ConvolutionRole.Forward => (needA ? IA(yBar, b) : null, needB ? WA(a, yBar) : null),
                ConvolutionRole.InputAdjoint => (needA ? F(yBar, b) : null, needB ? WA(yBar, a) : null),
                _ => (needA ? IA(b, yBar) : null, needB ? F(a, yBar) : null),
            };
        }
        return bars;
    }
}
