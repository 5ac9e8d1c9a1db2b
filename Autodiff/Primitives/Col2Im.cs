using Curvature.Engine;

namespace Curvature.Autodiff.Primitives;

/// <summary>
/// x = col2im(cols): columns [c·kh·kw, n·oh·ow] summed back into [n, c, h, w], the adjoint of im2col.
/// Linear: JVP: ẋ = col2im(ċols). VJP: c̄ols = im2col(x̄).
/// </summary>
public sealed class Col2Im(int channels, int height, int width, int kh, int kw, int stride, int padding) : Primitive
{
    /// <summary>Channels of the result.</summary>
    public int Channels { get; } = channels;
    /// <summary>Height of the result.</summary>
    public int Height { get; } = height;
    /// <summary>Width of the result.</summary>
    public int Width { get; } = width;
    /// <summary>Kernel height.</summary>
    public int KernelHeight { get; } = kh;
    /// <summary>Kernel width.</summary>
    public int KernelWidth { get; } = kw;
    /// <summary>Stride.</summary>
    public int Stride { get; } = stride;
    /// <summary>Zero padding on each side.</summary>
    public int Padding { get; } = padding;
    /// <inheritdoc/>
    public override string Name => "col2im";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => x[0].Col2Im(Channels, Height, Width, KernelHeight, KernelWidth, Stride, Padding);
    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y) => xDot[0] is null ? null : Apply(xDot[0]!);
    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed) =>
        [new Im2Col(KernelHeight, KernelWidth, Stride, Padding).Apply(yBar)];
}
