using Curvature.Engine;

namespace Curvature.Autodiff.Primitives;

/// <summary>
/// cols = im2col(x): the kh×kw patches of x [n, c, h, w] as columns [c·kh·kw, n·oh·ow].
/// Linear: JVP: ċols = im2col(ẋ). VJP: x̄ = col2im(c̄ols), its adjoint.
/// </summary>
public sealed class Im2Col(int kh, int kw, int stride, int padding) : Primitive
{
    /// <summary>Kernel height.</summary>
    public int KernelHeight { get; } = kh;
    /// <summary>Kernel width.</summary>
    public int KernelWidth { get; } = kw;
    /// <summary>Stride.</summary>
    public int Stride { get; } = stride;
    /// <summary>Zero padding on each side.</summary>
    public int Padding { get; } = padding;
    /// <inheritdoc/>
    public override string Name => "im2col";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => x[0].Im2Col(KernelHeight, KernelWidth, Stride, Padding);
    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y) => xDot[0] is null ? null : Apply(xDot[0]!);
    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed) =>
        [new Col2Im(x[0].Shape[1], x[0].Shape[2], x[0].Shape[3], KernelHeight, KernelWidth, Stride, Padding).Apply(yBar)];
}
