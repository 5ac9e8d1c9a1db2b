using Curvature.Kernels;
using Curvature.Kernels.Gpu;
using ILGPU;
using CpuConvolution = Curvature.Kernels.Cpu.Convolution;
using CpuLayout = Curvature.Kernels.Cpu.Layout;
using GpuLayout = Curvature.Kernels.Gpu.Layout;

namespace Curvature.Engine;

/// <summary>
/// The 2-D convolution family, in one place: its validation and its lowering per device (the CPU's direct and
/// implicit-GEMM kernels; on an accelerator im2col or col2im and one tiled product per image). Devices offer the
/// launch surface it uses (<see cref="Device.NewArray"/>; on an accelerator its kernel cache, launch gate, array
/// views and product), so the family adds no member to <see cref="Device"/>. Convolution here is PyTorch's conv2d:
/// cross-correlation of x [N, C, H, W] with w [O, C, KH, KW], zero padding, one stride for both axes.
/// </summary>
public static class ConvolutionOps
{
    /// <summary>Output height and width of a kh×kw window with stride and zero padding over h×w.</summary>
    public static (int Height, int Width) ConvolutionOutput(int h, int w, int kh, int kw, int stride, int padding)
    {
        if (kh < 1 || kw < 1 || stride < 1 || padding < 0) throw new ArgumentException($"convolution: kernel {kh}×{kw}, stride {stride}, padding {padding}; expected positive sizes and non-negative padding.");
        int oh = (h + 2 * padding - kh) / stride + 1, ow = (w + 2 * padding - kw) / stride + 1;
        if (oh < 1 || ow < 1) throw new ArgumentException($"convolution: a {kh}×{kw} kernel does not fit a {h}×{w} input with padding {padding}.");
        return (oh, ow);
    }

    /// <summary>The geometry of convolving this [N, C, H, W] input with a [O, C, KH, KW] kernel; errors name the op and shapes.</summary>
    public static ConvolutionGeometry ConvolutionWith(this NdArray x, Shape weight, int stride, int padding, string op = "conv2d")
    {
        if (x.Rank != 4 || weight.Rank != 4 || weight[1] != x.Shape[1])
            throw new ArgumentException($"{op}: input {x.Shape} and weight {weight}; expected [N, C, H, W] and [O, C, kh, kw] with the same C.");
        ConvolutionOutput(x.Shape[2], x.Shape[3], weight[2], weight[3], stride, padding);
        return new ConvolutionGeometry(x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3], weight[0], weight[2], weight[3], stride, padding);
    }

    /// <summary>2-D convolution (cross-correlation, as PyTorch's conv2d without bias) of this [N, C, H, W] input with w [O, C, KH, KW].</summary>
    public static NdArray Conv2d(this NdArray x, NdArray w, int stride, int padding)
    {
        NdArray.CheckPair("conv2d", x, w);
        var g = x.ConvolutionWith(w.Shape, stride, padding);
        var y = x.Device.NewArray(new Shape(g.N, g.O, g.OH, g.OW), x.DType);
        switch (x.Device)
        {
            case CpuDevice:
                if (x.DType == DType.Float32) CpuConvolution.Forward<float>(x.Span<float>(), w.Span<float>(), y.Span<float>(), g);
                else CpuConvolution.Forward<double>(x.Span<double>(), w.Span<double>(), y.Span<double>(), g);
                GC.KeepAlive(x); GC.KeepAlive(w); // spans do not keep pooled arrays alive
                return y;
            case AcceleratorDevice d:
                using (d.EnterLaunch()) Forward(d, x, w, y, g);
                return y;
            default:
                throw x.Device.NoLowering("conv2d");
        }
    }

    /// <summary>The convolution's adjoint in its input: this is ȳ [N, O, OH, OW]; returns x̄ of the geometry's input shape.</summary>
    public static NdArray Conv2dInputGradient(this NdArray gy, NdArray w, ConvolutionGeometry g)
    {
        NdArray.CheckPair("conv2d_input_grad", gy, w);
        if (gy.Shape != new Shape(g.N, g.O, g.OH, g.OW) || w.Shape != new Shape(g.O, g.C, g.KH, g.KW))
            throw new ArgumentException($"conv2d_input_grad: ȳ {gy.Shape} and weight {w.Shape}; expected [{g.N}, {g.O}, {g.OH}, {g.OW}] and [{g.O}, {g.C}, {g.KH}, {g.KW}].");
        var r = gy.Device.NewArray(new Shape(g.N, g.C, g.H, g.W), gy.DType);
        switch (gy.Device)
        {
            case CpuDevice:
                if (gy.DType == DType.Float32) CpuConvolution.InputGradient<float>(gy.Span<float>(), w.Span<float>(), r.Span<float>(), g);
                else CpuConvolution.InputGradient<double>(gy.Span<double>(), w.Span<double>(), r.Span<double>(), g);
                GC.KeepAlive(gy); GC.KeepAlive(w);
                return r;
            case AcceleratorDevice d:
                using (d.EnterLaunch()) InputGradient(d, gy, w, r, g);
                return r;
            default:
                throw gy.Device.NoLowering("conv2d_input_grad");
        }
    }

    /// <summary>conv(this, w) + conv(x2, w2) with one geometry (x2 shaped as this, w2 as w): a bilinear JVP's two terms.</summary>
    public static NdArray Conv2dSum(this NdArray x, NdArray w, NdArray x2, NdArray w2, ConvolutionGeometry g)
    {
        foreach (var other in new[] { w, x2, w2 }) NdArray.CheckPair("conv2d", x, other);
        var (xs, ws) = (new Shape(g.N, g.C, g.H, g.W), new Shape(g.O, g.C, g.KH, g.KW));
        if (x.Shape != xs || x2.Shape != xs || w.Shape != ws || w2.Shape != ws)
            throw new ArgumentException($"conv2d: inputs {x.Shape} and {x2.Shape}, weights {w.Shape} and {w2.Shape}; expected {xs} and {ws}.");
        if (x.Device is not CpuDevice) return x.Conv2d(w, g.Stride, g.Padding) + x2.Conv2d(w2, g.Stride, g.Padding);
        // The CPU accumulates the second product into the first's output in its kernel.
        var r = x.Device.NewArray(new Shape(g.N, g.O, g.OH, g.OW), x.DType);
        if (x.DType == DType.Float32) CpuConvolution.ForwardPair<float>(x.Span<float>(), w.Span<float>(), x2.Span<float>(), w2.Span<float>(), r.Span<float>(), g);
        else CpuConvolution.ForwardPair<double>(x.Span<double>(), w.Span<double>(), x2.Span<double>(), w2.Span<double>(), r.Span<double>(), g);
        GC.KeepAlive(x); GC.KeepAlive(w); GC.KeepAlive(x2); GC.KeepAlive(w2);
        return r;
    }

    /// <summary>The input adjoint of (this, w) plus that of (gy2, w2), with one geometry: a bilinear JVP's two terms.</summary>
    public static NdArray Conv2dInputGradientSum(this NdArray gy, NdArray w, NdArray gy2, NdArray w2, ConvolutionGeometry g)
    {
        foreach (var other in new[] { w, gy2, w2 }) NdArray.CheckPair("conv2d_input_grad", gy, other);
        var (ys, ws) = (new Shape(g.N, g.O, g.OH, g.OW), new Shape(g.O, g.C, g.KH, g.KW));
        if (gy.Shape != ys || gy2.Shape != ys || w.Shape != ws || w2.Shape != ws)
            throw new ArgumentException($"conv2d_input_grad: ȳ {gy.Shape} and {gy2.Shape}, weights {w.Shape} and {w2.Shape}; expected {ys} and {ws}.");
        if (gy.Device is not CpuDevice) return gy.Conv2dInputGradient(w, g) + gy2.Conv2dInputGradient(w2, g);
        var r = gy.Device.NewArray(new Shape(g.N, g.C, g.H, g.W), gy.DType);
        if (gy.DType == DType.Float32) CpuConvolution.InputGradientPair<float>(gy.Span<float>(), w.Span<float>(), gy2.Span<float>(), w2.Span<float>(), r.Span<float>(), g);
        else CpuConvolution.InputGradientPair<double>(gy.Span<double>(), w.Span<double>(), gy2.Span<double>(), w2.Span<double>(), r.Span<double>(), g);
        GC.KeepAlive(gy); GC.KeepAlive(w); GC.KeepAlive(gy2); GC.KeepAlive(w2);
        return r;
    }

    /// <summary>The convolution's adjoint in its weight: w̄ [O, C, KH, KW] from the input x (this) and ȳ.</summary>
    public static NdArray Conv2dWeightGradient(this NdArray x, NdArray gy, ConvolutionGeometry g)
    {
        NdArray.CheckPair("conv2d_weight_grad", x, gy);
        if (x.Shape != new Shape(g.N, g.C, g.H, g.W) || gy.Shape != new Shape(g.N, g.O, g.OH, g.OW))
            throw new ArgumentException($"conv2d_weight_grad: x {x.Shape} and ȳ {gy.Shape}; expected [{g.N}, {g.C}, {g.H}, {g.W}] and [{g.N}, {g.O}, {g.OH}, {g.OW}].");
        switch (x.Device)
        {
            case CpuDevice:
                var r = x.Device.NewArray(new Shape(g.O, g.C, g.KH, g.KW), x.DType);
                if (x.DType == DType.Float32) CpuConvolution.WeightGradient<float>(x.Span<float>(), gy.Span<float>(), r.Span<float>(), g);
                else CpuConvolution.WeightGradient<double>(x.Span<double>(), gy.Span<double>(), r.Span<double>(), g);
                GC.KeepAlive(x); GC.KeepAlive(gy);
                return r;
            case AcceleratorDevice d:
                using (d.EnterLaunch()) return WeightGradient(d, x, gy, g);
            default:
                throw x.Device.NoLowering("conv2d_weight_grad");
        }
    }

    /// <summary>im2col of this [n, c, h, w] array: columns [c·kh·kw, n·oh·ow], ready for one product with [o, c·kh·kw] kernels.</summary>
    public static NdArray Im2Col(this NdArray x, int kh, int kw, int stride, int padding)
    {
        x.RequireFloat("im2col");
        if (x.Rank != 4) throw new ArgumentException($"im2col: input {x.Shape}; expected [N, C, H, W].");
        ConvolutionOutput(x.Shape[2], x.Shape[3], kh, kw, stride, padding);
        var g = new ConvolutionGeometry(x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3], 1, kh, kw, stride, padding);
        var cols = x.Device.NewArray(new Shape(g.K, g.N * g.Q), x.DType);
        switch (x.Device)
        {
            case CpuDevice:
                if (x.DType == DType.Float32) CpuLayout.Im2Col<float>(x.Span<float>(), g.N, g.C, g.H, g.W, kh, kw, stride, padding, cols.Span<float>());
                else CpuLayout.Im2Col<double>(x.Span<double>(), g.N, g.C, g.H, g.W, kh, kw, stride, padding, cols.Span<double>());
                GC.KeepAlive(x);
                return cols;
            case AcceleratorDevice d:
                using (d.EnterLaunch()) Im2Col(d, x, cols, g);
                return cols;
            default:
                throw x.Device.NoLowering("im2col");
        }
    }

    /// <summary>col2im, the adjoint of im2col: columns [c·kh·kw, n·oh·ow] summed into [n, c, h, w].</summary>
    public static NdArray Col2Im(this NdArray cols, int c, int h, int w, int kh, int kw, int stride, int padding)
    {
        cols.RequireFloat("col2im");
        var (oh, ow) = ConvolutionOutput(h, w, kh, kw, stride, padding);
        if (cols.Rank != 2 || cols.Shape[0] != c * kh * kw || cols.Shape[1] % (oh * ow) != 0)
            throw new ArgumentException($"col2im: columns {cols.Shape}; expected [{c * kh * kw}, N·{oh * ow}] for {c}×{h}×{w} with a {kh}×{kw} kernel.");
        int n = cols.Shape[1] / (oh * ow);
        var x = cols.Device.NewArray(new Shape(n, c, h, w), cols.DType);
        switch (cols.Device)
        {
            case CpuDevice:
                if (cols.DType == DType.Float32) CpuLayout.Col2Im<float>(cols.Span<float>(), n, c, h, w, kh, kw, stride, padding, x.Span<float>());
                else CpuLayout.Col2Im<double>(cols.Span<double>(), n, c, h, w, kh, kw, stride, padding, x.Span<double>());
                GC.KeepAlive(cols);
                return x;
            case AcceleratorDevice d:
                using (d.EnterLaunch()) Col2Im(d, cols, x, new ConvolutionGeometry(n, c, h, w, 1, kh, kw, stride, padding));
                return x;
            default:
                throw cols.Device.NoLowering("col2im");
        }
    }

    // ---------------------------------------------------------------- accelerator lowering (im2col + GEMM)
    // Each runs inside the device's launch gate; workspaces are allocated before any view is taken.

    private static void Forward(AcceleratorDevice d, NdArray x, NdArray w, NdArray y, ConvolutionGeometry g)
    {
        // y[n] = W[O, K]·cols[K, n·Q … n·Q + Q): one product per image, written where the image's output goes, so no
        // [O, N, Q] → [N, O, Q] copy.
        var cols = d.NewArray(new Shape(g.K, g.N * g.Q), x.DType);
        Im2Col(d, x, cols, g);
        if (y.Size > 0)
            d.Multiply(w, cols, y, new GemmArguments { M = g.O, N = g.Q, K = g.K, Lda = g.K, Ldb = g.N * g.Q, Ldc = g.Q, StrideB = g.Q, StrideC = g.O * g.Q }, g.N);
    }

    private static void InputGradient(AcceleratorDevice d, NdArray gy, NdArray w, NdArray r, ConvolutionGeometry g)
    {
        // cols[K, n·Q … n·Q + Q) = Wᵀ·ȳ[n] for each image (ȳ read in place), then col2im.
        var cols = d.NewArray(new Shape(g.K, g.N * g.Q), gy.DType);
        if (cols.Size > 0)
            d.Multiply(w, gy, cols, new GemmArguments
            {
                M = g.K, N = g.Q, K = g.O, TransA = 1, Lda = g.K, Ldb = g.Q, Ldc = g.N * g.Q, StrideB = g.O * g.Q, StrideC = g.Q,
            }, g.N);
        Col2Im(d, cols, r, g);
    }

    private static NdArray WeightGradient(AcceleratorDevice d, NdArray x, NdArray gy, ConvolutionGeometry g)
    {
        // W̄[O, K] = ȳ'[O, N·Q]·colsᵀ.
        var gyT = d.Permute(gy.Reshape(g.N, g.O, g.Q), [1, 0, 2]);
        var cols = d.NewArray(new Shape(g.K, g.N * g.Q), x.DType);
        var r = d.NewArray(new Shape(g.O, g.C, g.KH, g.KW), x.DType);
        Im2Col(d, x, cols, g);
        if (g.N * g.Q == 0) return d.Full(r.Shape, x.DType, 0);
        d.Multiply(gyT, cols, r, new GemmArguments { M = g.O, N = g.K, K = g.N * g.Q, TransB = 1, Lda = g.N * g.Q, Ldb = g.N * g.Q, Ldc = g.K }, 1);
        return r;
    }

    private static void Im2Col(AcceleratorDevice d, NdArray x, NdArray cols, ConvolutionGeometry g)
    {
        if (cols.Size == 0) return;
        var config = d.CompiledKernels.Stride(cols.Size);
        if (x.DType == DType.Float32) d.CompiledKernels.Load<ArrayView<float>, ArrayView<float>, ConvolutionShape>(GpuLayout.Im2Col)(config, AcceleratorDevice.View<float>(x), AcceleratorDevice.View<float>(cols), ConvolutionShape.Of(g));
        else d.CompiledKernels.Load<ArrayView<double>, ArrayView<double>, ConvolutionShape>(GpuLayout.Im2Col)(config, AcceleratorDevice.View<double>(x), AcceleratorDevice.View<double>(cols), ConvolutionShape.Of(g));
    }

    private static void Col2Im(AcceleratorDevice d, NdArray cols, NdArray x, ConvolutionGeometry g)
    {
        if (x.Size == 0) return;
        var config = d.CompiledKernels.Stride(x.Size);
        if (x.DType == DType.Float32) d.CompiledKernels.Load<ArrayView<float>, ArrayView<float>, ConvolutionShape>(GpuLayout.Col2Im)(config, AcceleratorDevice.View<float>(cols), AcceleratorDevice.View<float>(x), ConvolutionShape.Of(g));
        else d.CompiledKernels.Load<ArrayView<double>, ArrayView<double>, ConvolutionShape>(GpuLayout.Col2Im)(config, AcceleratorDevice.View<double>(cols), AcceleratorDevice.View<double>(x), ConvolutionShape.Of(g));
    }
}
