using ILGPU;
using Curvature.Engine;
using Curvature.Kernels;
using CpuUpdates = Curvature.Kernels.Cpu.ParameterUpdates;
using GpuUpdates = Curvature.Kernels.Gpu.ParameterUpdates;

namespace Curvature.Optimizers;

/// <summary>
/// The optimizers' whole per-parameter updates in one pass over memory (one launch on an accelerator): their
/// validation and their lowering per device, here beside the optimizers that own them rather than in Engine, whose
/// devices offer the launch surface they use (<see cref="Device.NewArray"/>; on an accelerator its kernel cache,
/// launch gate and array views). The rules themselves are <see cref="UpdateRules"/>, shared by both kernels.
/// </summary>
public static class FusedUpdates
{
    /// <summary>
    /// One Adam step of parameter w with gradient g and moments m, v (arrays of one shape, float dtype and device): the
    /// new moments and the new weights, or the direction when <see cref="AdamStep.Apply"/> is 0
    /// (<see cref="UpdateRules.Adam{T, K}"/>); fresh arrays.
    /// </summary>
    public static (NdArray M, NdArray V, NdArray Result) Adam(NdArray w, NdArray g, NdArray m, NdArray v, AdamStep step)
    {
        Check("adam_update", w, ("gradient", g), ("first moment", m), ("second moment", v));
        var (mNext, vNext, result) = (w.Device.NewArray(w.Shape, w.DType), w.Device.NewArray(w.Shape, w.DType), w.Device.NewArray(w.Shape, w.DType));
        switch (w.Device)
        {
            case CpuDevice:
                if (w.DType == DType.Float32)
                    CpuUpdates.Adam<float, Kernels.Float32Kind>(w.Span<float>(), g.Span<float>(), m.Span<float>(), v.Span<float>(), mNext.Span<float>(), vNext.Span<float>(), result.Span<float>(), step);
                else
                    CpuUpdates.Adam<double, Kernels.Float64Kind>(w.Span<double>(), g.Span<double>(), m.Span<double>(), v.Span<double>(), mNext.Span<double>(), vNext.Span<double>(), result.Span<double>(), step);
                GC.KeepAlive(w); GC.KeepAlive(g); GC.KeepAlive(m); GC.KeepAlive(v); // spans do not keep pooled arrays alive
                break;
            case AcceleratorDevice accelerator:
                using (accelerator.EnterLaunch())
                {
                    if (w.DType == DType.Float32) AdamLaunch<float, Kernels.Float32Kind>(accelerator, w, g, m, v, mNext, vNext, result, step);
                    else AdamLaunch<double, Kernels.Float64Kind>(accelerator, w, g, m, v, mNext, vNext, result, step);
                }
                break;
            default:
                throw w.Device.NoLowering("adam_update");
        }
        return (mNext, vNext, result);
    }

    private static void AdamLaunch<T, K>(AcceleratorDevice d, NdArray w, NdArray g, NdArray m, NdArray v, NdArray mNext, NdArray vNext, NdArray result, AdamStep step)
        where T : unmanaged, System.Numerics.IFloatingPointIeee754<T> where K : struct, Kernels.IScalarKind<T> =>
        d.CompiledKernels.Load<ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, AdamStep>(GpuUpdates.Adam<T, K>)(
            d.CompiledKernels.Stride(Math.Max(1, w.Size)), AcceleratorDevice.View<T>(w), AcceleratorDevice.View<T>(g), AcceleratorDevice.View<T>(m), AcceleratorDevice.View<T>(v),
            AcceleratorDevice.View<T>(mNext), AcceleratorDevice.View<T>(vNext), AcceleratorDevice.View<T>(result), step);

    /// <summary>
    /// One heavy-ball step of parameter w with gradient g and buffer b: the new buffer and weights
    /// (<see cref="UpdateRules.MomentumBuffer{T}"/>), rounded as the linear combinations b' = μb + (g + λw) and
    /// w − ηb' (or Nesterov's w − (g + λw + μb')·η) round op by op; fresh arrays.
    /// </summary>
    public static (NdArray Buffer, NdArray Weights) Momentum(NdArray w, NdArray g, NdArray b, MomentumStep step)
    {
        Check("momentum_update", w, ("gradient", g), ("buffer", b));
        var (bNext, wNext) = (w.Device.NewArray(w.Shape, w.DType), w.Device.NewArray(w.Shape, w.DType));
        switch (w.Device)
        {
            case CpuDevice:
                if (w.DType == DType.Float32)
                    CpuUpdates.Momentum<float>(w.Span<float>(), g.Span<float>(), b.Span<float>(), bNext.Span<float>(), wNext.Span<float>(), step);
                else
                    CpuUpdates.Momentum<double>(w.Span<double>(), g.Span<double>(), b.Span<double>(), bNext.Span<double>(), wNext.Span<double>(), step);
                GC.KeepAlive(w); GC.KeepAlive(g); GC.KeepAlive(b);
                break;
            case AcceleratorDevice accelerator:
                using (accelerator.EnterLaunch())
                {
                    if (w.DType == DType.Float32) MomentumLaunch<float, Kernels.Float32Kind>(accelerator, w, g, b, bNext, wNext, step);
                    else MomentumLaunch<double, Kernels.Float64Kind>(accelerator, w, g, b, bNext, wNext, step);
                }
                break;
            default:
                throw w.Device.NoLowering("momentum_update");
        }
        return (bNext, wNext);
    }

    private static void MomentumLaunch<T, K>(AcceleratorDevice d, NdArray w, NdArray g, NdArray b, NdArray bNext, NdArray wNext, MomentumStep step)
        where T : unmanaged, System.Numerics.IFloatingPointIeee754<T> where K : struct, Kernels.IScalarKind<T> =>
        d.CompiledKernels.Load<ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, MomentumStep>(GpuUpdates.Momentum<T, K>)(
            d.CompiledKernels.Stride(Math.Max(1, w.Size)), AcceleratorDevice.View<T>(w), AcceleratorDevice.View<T>(g), AcceleratorDevice.View<T>(b),
            AcceleratorDevice.View<T>(bNext), AcceleratorDevice.View<T>(wNext), step);

    private static void Check(string op, NdArray w, params (string Name, NdArray Array)[] others)
    {
        if (!w.DType.IsFloat()) throw new ArgumentException($"{op}: weights of dtype {w.DType.Name()}; expected float32 or float64.");
        foreach (var (name, x) in others)
        {
            if (x.Device != w.Device) throw new ArgumentException($"{op}: operands are on different devices ({w.Shape} on {w.Device.Name}, {x.Shape} on {x.Device.Name}); expected one device.");
            if (x.DType != w.DType) throw new ArgumentException($"{op}: operand dtypes {w.DType.Name()} {w.Shape} and {x.DType.Name()} {x.Shape}; expected the same float dtype.");
            if (x.Shape != w.Shape) throw new ArgumentException($"{op}: weights {w.Shape} and {name} {x.Shape}; expected the same shape.");
        }
    }
}
