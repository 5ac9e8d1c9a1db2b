namespace Curvature.Kernels;

/// <summary>The shapes of a 2-D convolution: input [N, C, H, W], weight [O, C, KH, KW], stride, zero padding.</summary>
public readonly record struct ConvolutionGeometry(int N, int C, int H, int W, int O, int KH, int KW, int Stride, int Padding)
{
    /// <summary>Output height.</summary>
    public int OH => (H + 2 * Padding - KH) / Stride + 1;
    /// <summary>Output width.</summary>
    public int OW => (W + 2 * Padding - KW) / Stride + 1;
    /// <summary>Output positions per image.</summary>
    public int Q => OH * OW;
    /// <summary>Weights per output channel, C·KH·KW.</summary>
    public int K => C * KH * KW;
}
