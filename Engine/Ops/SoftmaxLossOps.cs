using Curvature.Kernels;
using ILGPU;
using CpuSoftmax = Curvature.Kernels.Cpu.Softmax;
using GpuElementWise = Curvature.Kernels.Gpu.ElementWise;
using GpuSoftmax = Curvature.Kernels.Gpu.Softmax;

namespace Curvature.Engine;

/// <summary>
/// The softmax family over the last axis and the classification losses built on it, in one place: validation and
/// lowering per device (the CPU's row kernels; on an accelerator one thread per row). Devices offer the launch
/// surface it uses (<see cref="Device.NewArray"/>; on an accelerator its kernel cache, launch gate and array views),
/// so the family adds no member to <see cref="Device"/>.
/// </summary>
public static class SoftmaxLossOps
{
    /// <summary>softmax over the last axis.</summary>
    public static NdArray Softmax(this NdArray x)
    {
        x.RequireFloat("softmax");
        if (x.Rank < 1) throw new ArgumentException("softmax: expected at least one axis, got a scalar.");
        return Rows(x, "softmax", CpuSoftmax.SoftmaxRows<float>, CpuSoftmax.SoftmaxRows<double>,
            GpuSoftmax.SoftmaxRows<float, Float32Kind>, GpuSoftmax.SoftmaxRows<double, Float64Kind>);
    }

    /// <summary>log softmax over the last axis.</summary>
    public static NdArray LogSoftmax(this NdArray x)
    {
        x.RequireFloat("log_softmax");
        if (x.Rank < 1) throw new ArgumentException("log_softmax: expected at least one axis, got a scalar.");
        return Rows(x, "log_softmax", CpuSoftmax.LogSoftmaxRows<float>, CpuSoftmax.LogSoftmaxRows<double>,
            GpuSoftmax.LogSoftmaxRows<float, Float32Kind>, GpuSoftmax.LogSoftmaxRows<double, Float64Kind>);
    }

    /// <summary>y ⊙ (g − Σ y ⊙ g) over the last axis: with y (this) = softmax(x), the softmax's Jacobian applied to g.</summary>
    public static NdArray SoftmaxJacobian(this NdArray y, NdArray g)
    {
        NdArray.CheckPair("softmax_jacobian", y, g);
        if (g.Shape != y.Shape) throw new ArgumentException($"softmax_jacobian: y {y.Shape} and g {g.Shape}; expected the same shape.");
        var r = y.Device.NewArray(y.Shape, y.DType);
        int cols = y.Shape[^1], rows = (int)(y.Size / Math.Max(1, cols));
        switch (y.Device)
        {
            case CpuDevice:
                if (y.DType == DType.Float32) CpuSoftmax.SoftmaxJacobianRows<float>(y.Span<float>(), g.Span<float>(), rows, cols, r.Span<float>());
                else CpuSoftmax.SoftmaxJacobianRows<double>(y.Span<double>(), g.Span<double>(), rows, cols, r.Span<double>());
                GC.KeepAlive(y); GC.KeepAlive(g); // spans do not keep pooled arrays alive
                return r;
            case AcceleratorDevice d:
                if (y.Size == 0) return r;
                using (d.EnterLaunch())
                {
                    var k = d.CompiledKernels;
                    if (y.DType == DType.Float32)
                        k.Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>(GpuSoftmax.SoftmaxJacobianRows<float, Float32Kind>)(k.Stride(rows), AcceleratorDevice.View<float>(y), AcceleratorDevice.View<float>(g), AcceleratorDevice.View<float>(r), rows, cols);
                    else
                        k.Load<ArrayView<double>, ArrayView<double>, ArrayView<double>, int, int>(GpuSoftmax.SoftmaxJacobianRows<double, Float64Kind>)(k.Stride(rows), AcceleratorDevice.View<double>(y), AcceleratorDevice.View<double>(g), AcceleratorDevice.View<double>(r), rows, cols);
                }
                return r;
            default:
                throw y.Device.NoLowering("softmax_jacobian");
        }
    }

    /// <summary>Checks [N, C] float logits against [N] int64 labels.</summary>
    public static void CheckLogitsAndLabels(this NdArray logits, string op, NdArray labels)
    {
        logits.RequireFloat(op);
        if (logits.Rank != 2 || labels.DType != DType.Int64 || labels.Rank != 1 || labels.Shape[0] != logits.Shape[0] || labels.Device != logits.Device)
            throw new ArgumentException($"{op}: logits {logits.DType.Name()} {logits.Shape}, labels {labels.DType.Name()} {labels.Shape}; expected [N, C] float logits and [N] int64 labels on one device.");
    }

    /// <summary>Mean cross-entropy of [N, C] logits against [N] int64 labels (a scalar).</summary>
    public static NdArray CrossEntropy(this NdArray logits, NdArray labels)
    {
        logits.CheckLogitsAndLabels("cross_entropy", labels);
        return CrossEntropy(logits, labels, withGradient: false).Loss;
    }

    /// <summary>(softmax(logits) − onehot(labels)) / N: the gradient of the mean cross-entropy.</summary>
    public static NdArray CrossEntropyGradient(this NdArray logits, NdArray labels)
    {
        logits.CheckLogitsAndLabels("cross_entropy_backward", labels);
        return CrossEntropy(logits, labels, withGradient: true).Gradient!;
    }

    /// <summary>One-hot rows [N, classes] of int64 labels [N].</summary>
    public static NdArray OneHot(NdArray labels, int classes, DType dtype = DType.Float32)
    {
        if (labels.DType != DType.Int64 || labels.Rank != 1) throw new ArgumentException($"one_hot: labels {labels.DType.Name()} {labels.Shape}; expected int64 [N].");
        switch (labels.Device)
        {
            case CpuDevice cpu:
            {
                var r = cpu.Full(new Shape(labels.Shape[0], classes), dtype, 0);
                var l = labels.Span<long>();
                for (int i = 0; i < l.Length; i++)
                {
                    if ((ulong)l[i] >= (ulong)classes) throw new ArgumentOutOfRangeException(nameof(labels), $"one_hot: label {l[i]} at position {i} is outside [0, {classes}).");
                    if (dtype == DType.Float32) r.Span<float>()[i * classes + (int)l[i]] = 1;
                    else r.Span<double>()[i * classes + (int)l[i]] = 1;
                }
                GC.KeepAlive(labels);
                return r;
            }
            case AcceleratorDevice d:
            {
                var r = d.NewArray(new Shape(labels.Shape[0], classes), dtype);
                if (r.Size == 0) return r;
                using (d.EnterLaunch())
                {
                    var k = d.CompiledKernels;
                    if (dtype == DType.Float32) k.Load<ArrayView<long>, ArrayView<float>, int>(GpuElementWise.OneHot<float, Float32Kind>)(k.Stride(r.Size), AcceleratorDevice.View<long>(labels), AcceleratorDevice.View<float>(r), classes);
                    else k.Load<ArrayView<long>, ArrayView<double>, int>(GpuElementWise.OneHot<double, Float64Kind>)(k.Stride(r.Size), AcceleratorDevice.View<long>(labels), AcceleratorDevice.View<double>(r), classes);
                }
                return r;
            }
            default:
                throw labels.Device.NoLowering("one_hot");
        }
    }

    /// <summary>The mean cross-entropy and, when asked, its gradient, from one pass over the rows.</summary>
    private static (NdArray Loss, NdArray? Gradient) CrossEntropy(NdArray logits, NdArray labels, bool withGradient)
    {
        int rows = logits.Shape[0], cols = logits.Shape[1];
        var g = withGradient ? logits.Device.NewArray(logits.Shape, logits.DType) : null;
        switch (logits.Device)
        {
            case CpuDevice cpu:
                double loss = logits.DType == DType.Float32
                    ? CpuSoftmax.CrossEntropy<float>(logits.Span<float>(), rows, cols, labels.Span<long>(), g is null ? default : g.Span<float>(), withGradient)
                    : CpuSoftmax.CrossEntropy<double>(logits.Span<double>(), rows, cols, labels.Span<long>(), g is null ? default : g.Span<double>(), withGradient);
                GC.KeepAlive(logits); GC.KeepAlive(labels);
                return (cpu.Full(Shape.Scalar, logits.DType, loss), g);
            case AcceleratorDevice d:
                // Per-row losses in one launch, then their mean on the device (no read-back).
                var perRow = d.NewArray(new Shape(rows), logits.DType);
                using (d.EnterLaunch())
                {
                    var k = d.CompiledKernels;
                    if (logits.DType == DType.Float32)
                        k.Load<ArrayView<float>, ArrayView<long>, ArrayView<float>, ArrayView<float>, int, int>(GpuSoftmax.CrossEntropyRows<float, Float32Kind>)(
                            k.Stride(rows), AcceleratorDevice.View<float>(logits), AcceleratorDevice.View<long>(labels), AcceleratorDevice.View<float>(perRow),
                            g is null ? AcceleratorDevice.View<float>(perRow) : AcceleratorDevice.View<float>(g), cols, withGradient ? 1 : 0);
                    else
                        k.Load<ArrayView<double>, ArrayView<long>, ArrayView<double>, ArrayView<double>, int, int>(GpuSoftmax.CrossEntropyRows<double, Float64Kind>)(
                            k.Stride(rows), AcceleratorDevice.View<double>(logits), AcceleratorDevice.View<long>(labels), AcceleratorDevice.View<double>(perRow),
                            g is null ? AcceleratorDevice.View<double>(perRow) : AcceleratorDevice.View<double>(g), cols, withGradient ? 1 : 0);
                }
                var mean = d.Binary(BinaryOp.Mul, d.Reduce(ReduceOp.Sum, perRow, [0]).Reshape(), d.Full(Shape.Scalar, logits.DType, 1.0 / rows), Shape.Scalar);
                return (mean, g);
            default:
                throw logits.Device.NoLowering("cross_entropy");
        }
    }

    /// <summary>A row-wise op of one input and one output: the CPU kernels for float32 and float64, and the accelerator's (loaded, so compiled on first use, only for the dtype at hand).</summary>
    private delegate void CpuRows<T>(ReadOnlySpan<T> x, int rows, int cols, Span<T> y);

    private static NdArray Rows(NdArray x, string op, CpuRows<float> cpu32, CpuRows<double> cpu64,
        Action<ArrayView<float>, ArrayView<float>, int, int> gpu32, Action<ArrayView<double>, ArrayView<double>, int, int> gpu64)
    {
        var r = x.Device.NewArray(x.Shape, x.DType);
        int cols = x.Shape[^1], rows = (int)(x.Size / Math.Max(1, cols));
        switch (x.Device)
        {
            case CpuDevice:
                if (x.DType == DType.Float32) cpu32(x.Span<float>(), rows, cols, r.Span<float>());
                else cpu64(x.Span<double>(), rows, cols, r.Span<double>());
                GC.KeepAlive(x);
                return r;
            case AcceleratorDevice d:
                if (x.Size == 0) return r;
                using (d.EnterLaunch())
                {
                    var k = d.CompiledKernels;
                    if (x.DType == DType.Float32) k.Load(gpu32)(k.Stride(rows), AcceleratorDevice.View<float>(x), AcceleratorDevice.View<float>(r), rows, cols);
                    else k.Load(gpu64)(k.Stride(rows), AcceleratorDevice.View<double>(x), AcceleratorDevice.View<double>(r), rows, cols);
                }
                return r;
            default:
                throw x.Device.NoLowering(op);
        }
    }
}
