using Curvature.Kernels;
using Curvature.Kernels.Gpu;
using ILGPU;
using ILGPU.Runtime;
using CpuNormalization = Curvature.Kernels.Cpu.Normalization;
using GpuNormalization = Curvature.Kernels.Gpu.Normalization;

namespace Curvature.Engine;

/// <summary>
/// The grouped-normalization family's lowering, in one place: BatchNorm's and LayerNorm's statistics, normalization,
/// affine step (with residual and ReLU), their fused backward and tangent coefficients, the running-statistics update
/// and the normalization's Jacobian and its tangent. x is viewed as [a, g, b] with each of the g groups reduced over a
/// and b (BatchNorm: [N, C, H·W]; LayerNorm: [1, rows, features]); moments are float64, one value per group. The
/// <see cref="NormalizationOps"/> methods of the same names validate and call here; each op dispatches on the device to the
/// CPU's span kernels (<c>Kernels/Cpu/Normalization</c>) or to the accelerator's block-statistics kernels
/// (<c>Kernels/Gpu/Normalization</c>) on its launch surface, so the family adds no member to <see cref="Device"/>.
/// </summary>
internal static class NormalizationLowering
{
    /// <summary>The op's lowering for <paramref name="x"/>'s device.</summary>
    private static T On<T>(NdArray x, string op, Func<CpuLowering, T> cpu, Func<AcceleratorLowering, T> accelerator) => x.Device switch
    {
        CpuDevice c => cpu(new CpuLowering(c)),
        AcceleratorDevice d => accelerator(new AcceleratorLowering(d)),
        _ => throw x.Device.NoLowering(op),
    };

    internal static NdArray Normalize(NdArray x, int a, int g, int b, double epsilon) =>
        On(x, "normalize", c => c.Normalize(x, a, g, b, epsilon), d => d.Normalize(x, a, g, b, epsilon));

    internal static (NdArray Normalized, NdArray Mean, NdArray Variance) NormalizeWithMoments(NdArray x, int a, int g, int b, double epsilon) =>
        On(x, "normalize_with_moments", c => c.NormalizeWithMoments(x, a, g, b, epsilon), d => d.NormalizeWithMoments(x, a, g, b, epsilon));

    internal static NdArray ScaleShift(NdArray x, NdArray scale, NdArray shift, int a, int g, int b, NdArray? addend = null, bool relu = false) =>
        On(x, "scale_shift", c => c.ScaleShift(x, scale, shift, a, g, b, addend, relu), d => d.ScaleShift(x, scale, shift, a, g, b, addend, relu));

    internal static NdArray ScaleShift(NdArray x, NdArray scale, NdArray shift, NdArray x2, NdArray scale2, int a, int g, int b, NdArray? addend = null) =>
        On(x, "scale_shift", c => c.ScaleShift(x, scale, shift, x2, scale2, a, g, b, addend), d => d.ScaleShift(x, scale, shift, x2, scale2, a, g, b, addend));

    internal static NdArray NormalizeScaleShiftCoefficients(NdArray gamma, NdArray beta, NdArray mean, NdArray variance, double epsilon) =>
        On(gamma, "normalize_scale_shift_coefficients", c => c.NormalizeScaleShiftCoefficients(gamma, beta, mean, variance, epsilon), d => d.NormalizeScaleShiftCoefficients(gamma, beta, mean, variance, epsilon));

    internal static NdArray NormalizeScaleShiftBackward(NdArray x, NdArray u, NdArray gamma, NdArray mean, NdArray variance, int a, int g, int b, double epsilon) =>
        On(x, "normalize_scale_shift_backward", c => c.NormalizeScaleShiftBackward(x, u, gamma, mean, variance, a, g, b, epsilon), d => d.NormalizeScaleShiftBackward(x, u, gamma, mean, variance, a, g, b, epsilon));

    internal static (NdArray Mean, NdArray Variance, NdArray Batches) UpdateRunningStatistics(NdArray runningMean, NdArray runningVariance, NdArray batches, NdArray mean, NdArray variance, double momentum, double bessel) =>
        On(runningMean, "update_running_statistics", c => c.UpdateRunningStatistics(runningMean, runningVariance, batches, mean, variance, momentum, bessel), d => d.UpdateRunningStatistics(runningMean, runningVariance, batches, mean, variance, momentum, bessel));

    internal static NdArray NormalizeScaleShiftTangent(NdArray x, NdArray? xDot, NdArray gamma, NdArray beta, NdArray? gammaDot, NdArray? betaDot, NdArray mean, NdArray variance, int a, int g, int b, double epsilon) =>
        On(x, "normalize_scale_shift_tangent", c => c.NormalizeScaleShiftTangent(x, xDot, gamma, beta, gammaDot, betaDot, mean, variance, a, g, b, epsilon), d => d.NormalizeScaleShiftTangent(x, xDot, gamma, beta, gammaDot, betaDot, mean, variance, a, g, b, epsilon));

    internal static NdArray NormalizeScaleShiftBackwardTangent(NdArray x, NdArray u, NdArray gamma, NdArray? xDot, NdArray? gammaDot, NdArray? uDot, NdArray mean, NdArray variance, int a, int g, int b, double epsilon) =>
        On(x, "normalize_scale_shift_backward_tangent", c => c.NormalizeScaleShiftBackwardTangent(x, u, gamma, xDot, gammaDot, uDot, mean, variance, a, g, b, epsilon), d => d.NormalizeScaleShiftBackwardTangent(x, u, gamma, xDot, gammaDot, uDot, mean, variance, a, g, b, epsilon));

    internal static NdArray GroupMeanProduct(NdArray x, NdArray y, int a, int g, int b) =>
        On(x, "group_mean_product", c => c.GroupMeanProduct(x, y, a, g, b), d => d.GroupMeanProduct(x, y, a, g, b));

    internal static NdArray GroupCovariance(NdArray x, NdArray y, int a, int g, int b) =>
        On(x, "group_covariance", c => c.GroupCovariance(x, y, a, g, b), d => d.GroupCovariance(x, y, a, g, b));

    internal static (NdArray Mean, NdArray Variance) GroupMoments(NdArray x, int a, int g, int b) =>
        On(x, "group_moments", c => c.GroupMoments(x, a, g, b), d => d.GroupMoments(x, a, g, b));

    internal static NdArray NormalizeJacobian(NdArray x, NdArray u, int a, int g, int b, double epsilon) =>
        On(x, "normalize_jacobian", c => c.NormalizeJacobian(x, u, a, g, b, epsilon), d => d.NormalizeJacobian(x, u, a, g, b, epsilon));

    internal static NdArray NormalizeJacobianTangent(NdArray x, NdArray u, NdArray ju, NdArray v, NdArray? w, int a, int g, int b, double epsilon) =>
        On(x, "normalize_jacobian_tangent", c => c.NormalizeJacobianTangent(x, u, ju, v, w, a, g, b, epsilon), d => d.NormalizeJacobianTangent(x, u, ju, v, w, a, g, b, epsilon));

    /// <summary>The CPU lowering: the span kernels, inputs kept alive past their span reads.</summary>
    private sealed class CpuLowering(CpuDevice cpu)
    {
        private NdArray New(Shape shape, DType dtype) => cpu.NewArray(shape, dtype);

        private NdArray FromHost(Array data, Shape shape) => cpu.FromHost(data, shape);

        public NdArray Normalize(NdArray x, int a, int g, int b, double epsilon) => Normalize(x, a, g, b, epsilon, null, null);

        public (NdArray Normalized, NdArray Mean, NdArray Variance) NormalizeWithMoments(NdArray x, int a, int g, int b, double epsilon)
        {
            var (mean, variance) = (new double[g], new double[g]);
            var r = Normalize(x, a, g, b, epsilon, mean, variance);
            return (r, FromHost(mean, new Shape(g)), FromHost(variance, new Shape(g)));
        }

        private NdArray Normalize(NdArray x, int a, int g, int b, double epsilon, double[]? mean, double[]? variance)
        {
            using var alive = new KeepAlive(x);
            var r = New(x.Shape, x.DType);
            if (x.DType == DType.Float32) CpuNormalization.Normalize<float>(x.Span<float>(), r.Span<float>(), a, g, b, epsilon, mean, variance);
            else CpuNormalization.Normalize<double>(x.Span<double>(), r.Span<double>(), a, g, b, epsilon, mean, variance);
            return r;
        }

        public NdArray ScaleShift(NdArray x, NdArray scale, NdArray shift, int a, int g, int b, NdArray? addend = null, bool relu = false)
        {
            using var alive = new KeepAlive(x, scale, shift);
            using var alsoAlive = new KeepAlive(addend);
            var r = New(x.Shape, x.DType);
            if (x.DType == DType.Float32)
                CpuNormalization.ScaleShift<float>(x.Span<float>(), scale.Span<float>(), shift.Span<float>(), default, default, r.Span<float>(), a, g, b, addend is null ? default : addend.Span<float>(), relu);
            else
                CpuNormalization.ScaleShift<double>(x.Span<double>(), scale.Span<double>(), shift.Span<double>(), default, default, r.Span<double>(), a, g, b, addend is null ? default : addend.Span<double>(), relu);
            return r;
        }

        public NdArray ScaleShift(NdArray x, NdArray scale, NdArray shift, NdArray x2, NdArray scale2, int a, int g, int b, NdArray? addend = null)
        {
            using var alive = new KeepAlive(x, scale, shift);
            using var alsoAlive = new KeepAlive(x2, scale2, addend);
            var r = New(x.Shape, x.DType);
            if (x.DType == DType.Float32)
                CpuNormalization.ScaleShift<float>(x.Span<float>(), scale.Span<float>(), shift.Span<float>(), x2.Span<float>(), scale2.Span<float>(), r.Span<float>(), a, g, b, addend is null ? default : addend.Span<float>());
            else
                CpuNormalization.ScaleShift<double>(x.Span<double>(), scale.Span<double>(), shift.Span<double>(), x2.Span<double>(), scale2.Span<double>(), r.Span<double>(), a, g, b, addend is null ? default : addend.Span<double>());
            return r;
        }

        public NdArray NormalizeScaleShiftCoefficients(NdArray gamma, NdArray beta, NdArray mean, NdArray variance, double epsilon)
        {
            using var alive = new KeepAlive(gamma, beta);
            using var alsoAlive = new KeepAlive(mean, variance);
            var r = New(new Shape(2, (int)gamma.Size), gamma.DType);
            if (gamma.DType == DType.Float32)
                CpuNormalization.ScaleShiftCoefficients<float>(gamma.Span<float>(), beta.Span<float>(), mean.Span<double>(), variance.Span<double>(), r.Span<float>(), epsilon);
            else
                CpuNormalization.ScaleShiftCoefficients<double>(gamma.Span<double>(), beta.Span<double>(), mean.Span<double>(), variance.Span<double>(), r.Span<double>(), epsilon);
            return r;
        }

        public NdArray NormalizeScaleShiftBackward(NdArray x, NdArray u, NdArray gamma, NdArray mean, NdArray variance, int a, int g, int b, double epsilon)
        {
            using var alive = new KeepAlive(x, u, gamma);
            using var alsoAlive = new KeepAlive(mean, variance);
            var r = New(new Shape(5, g), x.DType);
            if (x.DType == DType.Float32)
                CpuNormalization.ScaleShiftBackward<float>(x.Span<float>(), u.Span<float>(), gamma.Span<float>(), mean.Span<double>(), variance.Span<double>(), r.Span<float>(), a, g, b, epsilon);
            else
                CpuNormalization.ScaleShiftBackward<double>(x.Span<double>(), u.Span<double>(), gamma.Span<double>(), mean.Span<double>(), variance.Span<double>(), r.Span<double>(), a, g, b, epsilon);
            return r;
        }

        public (NdArray Mean, NdArray Variance, NdArray Batches) UpdateRunningStatistics(NdArray runningMean, NdArray runningVariance,
            NdArray batches, NdArray mean, NdArray variance, double momentum, double bessel)
        {
            using var alive = new KeepAlive(runningMean, runningVariance, batches);
            using var alsoAlive = new KeepAlive(mean, variance);
            var (newMean, newVariance) = (New(runningMean.Shape, runningMean.DType), New(runningVariance.Shape, runningVariance.DType));
            if (runningMean.DType == DType.Float32)
                CpuNormalization.UpdateRunningStatistics<float>(runningMean.Span<float>(), runningVariance.Span<float>(), mean.Span<double>(), variance.Span<double>(), newMean.Span<float>(), newVariance.Span<float>(), momentum, bessel);
            else
                CpuNormalization.UpdateRunningStatistics<double>(runningMean.Span<double>(), runningVariance.Span<double>(), mean.Span<double>(), variance.Span<double>(), newMean.Span<double>(), newVariance.Span<double>(), momentum, bessel);
            return (newMean, newVariance, FromHost(new[] { batches.Span<long>()[0] + 1 }, batches.Shape));
        }

        public NdArray NormalizeScaleShiftTangent(NdArray x, NdArray? xDot, NdArray gamma, NdArray beta, NdArray? gammaDot, NdArray? betaDot,
            NdArray mean, NdArray variance, int a, int g, int b, double epsilon)
        {
            using var alive = new KeepAlive(x, xDot, gamma);
            using var alsoAlive = new KeepAlive(beta, gammaDot, betaDot);
            using var moments = new KeepAlive(mean, variance);
            var r = New(new Shape(4, g), x.DType);
            if (x.DType == DType.Float32)
                CpuNormalization.ScaleShiftTangent<float>(x.Span<float>(), Optional<float>(xDot), gamma.Span<float>(), beta.Span<float>(), Optional<float>(gammaDot), Optional<float>(betaDot),
                    mean.Span<double>(), variance.Span<double>(), r.Span<float>(), a, g, b, epsilon);
            else
                CpuNormalization.ScaleShiftTangent<double>(x.Span<double>(), Optional<double>(xDot), gamma.Span<double>(), beta.Span<double>(), Optional<double>(gammaDot), Optional<double>(betaDot),
                    mean.Span<double>(), variance.Span<double>(), r.Span<double>(), a, g, b, epsilon);
            return r;
        }

        public NdArray NormalizeScaleShiftBackwardTangent(NdArray x, NdArray u, NdArray gamma, NdArray? xDot, NdArray? gammaDot, NdArray? uDot,
            NdArray mean, NdArray variance, int a, int g, int b, double epsilon)
        {
            using var alive = new KeepAlive(x, u, gamma);
            using var alsoAlive = new KeepAlive(xDot, gammaDot, uDot);
            using var moments = new KeepAlive(mean, variance);
            var r = New(new Shape(5, g), x.DType);
            if (x.DType == DType.Float32)
                CpuNormalization.ScaleShiftBackwardTangent<float>(x.Span<float>(), u.Span<float>(), gamma.Span<float>(), Optional<float>(xDot), Optional<float>(gammaDot), Optional<float>(uDot),
                    mean.Span<double>(), variance.Span<double>(), r.Span<float>(), a, g, b, epsilon);
            else
                CpuNormalization.ScaleShiftBackwardTangent<double>(x.Span<double>(), u.Span<double>(), gamma.Span<double>(), Optional<double>(xDot), Optional<double>(gammaDot), Optional<double>(uDot),
                    mean.Span<double>(), variance.Span<double>(), r.Span<double>(), a, g, b, epsilon);
            return r;
        }

        /// <summary>The elements of an optional array, empty when it is absent (a zero tangent).</summary>
        private static ReadOnlySpan<T> Optional<T>(NdArray? x) where T : unmanaged => x is null ? default : x.Span<T>();

        public NdArray GroupMeanProduct(NdArray x, NdArray y, int a, int g, int b)
        {
            using var alive = new KeepAlive(x, y);
            var r = new double[g];
            if (x.DType == DType.Float32) CpuNormalization.GroupMeanProduct<float>(x.Span<float>(), y.Span<float>(), r, a, g, b);
            else CpuNormalization.GroupMeanProduct<double>(x.Span<double>(), y.Span<double>(), r, a, g, b);
            return FromHost(r, new Shape(g));
        }

        public NdArray GroupCovariance(NdArray x, NdArray y, int a, int g, int b)
        {
            using var alive = new KeepAlive(x, y);
            var r = new double[g];
            if (x.DType == DType.Float32) CpuNormalization.GroupCovariance<float>(x.Span<float>(), y.Span<float>(), r, a, g, b);
            else CpuNormalization.GroupCovariance<double>(x.Span<double>(), y.Span<double>(), r, a, g, b);
            return FromHost(r, new Shape(g));
        }

        public (NdArray Mean, NdArray Variance) GroupMoments(NdArray x, int a, int g, int b)
        {
            using var alive = new KeepAlive(x);
            var mean = new double[g];
            var variance = new double[g];
            if (x.DType == DType.Float32) CpuNormalization.Moments<float>(x.Span<float>(), mean, variance, a, g, b);
            else CpuNormalization.Moments<double>(x.Span<double>(), mean, variance, a, g, b);
            return (FromHost(mean, new Shape(g)), FromHost(variance, new Shape(g)));
        }

        public NdArray NormalizeJacobian(NdArray x, NdArray u, int a, int g, int b, double epsilon)
        {
            using var alive = new KeepAlive(x, u);
            var r = New(x.Shape, x.DType);
            if (x.DType == DType.Float32) CpuNormalization.Jacobian<float>(x.Span<float>(), u.Span<float>(), r.Span<float>(), a, g, b, epsilon);
            else CpuNormalization.Jacobian<double>(x.Span<double>(), u.Span<double>(), r.Span<double>(), a, g, b, epsilon);
            return r;
        }

        public NdArray NormalizeJacobianTangent(NdArray x, NdArray u, NdArray ju, NdArray v, NdArray? w, int a, int g, int b, double epsilon)
        {
            using var alive = new KeepAlive(x, u, ju);
            using var alsoAlive = new KeepAlive(v, w);
            var r = New(x.Shape, x.DType);
            if (x.DType == DType.Float32)
                CpuNormalization.JacobianTangent<float>(x.Span<float>(), u.Span<float>(), ju.Span<float>(), v.Span<float>(), w is null ? default : w.Span<float>(), r.Span<float>(), a, g, b, epsilon);
            else
                CpuNormalization.JacobianTangent<double>(x.Span<double>(), u.Span<double>(), ju.Span<double>(), v.Span<double>(), w is null ? default : w.Span<double>(), r.Span<double>(), a, g, b, epsilon);
            return r;
        }
    }

    /// <summary>
    /// The accelerator lowering: per-block partial statistics merged in a second launch, inside the device's launch
    /// gate; workspaces allocated before any view is taken.
    /// </summary>
    private sealed class AcceleratorLowering(AcceleratorDevice d)
    {
        private KernelCache kernels => d.CompiledKernels;

        private NdArray New(Shape shape, DType dtype) => d.NewArray(shape, dtype);

        private NdArray Full(Shape shape, DType dtype, double value) => d.Full(shape, dtype, value);

        private static ArrayView<T> V<T>(NdArray x) where T : unmanaged => AcceleratorDevice.View<T>(x);

        /// <summary>The [A, G, B] view, split into blocks of whole images for the statistics launches.</summary>
        private static NormalizationGroups Groups(int a, int g, int b, double epsilon = 0, int hasW = 0) =>
            new() { A = a, G = g, B = b, S = GpuNormalization.Splits(a, b), Epsilon = epsilon, HasW = hasW };

        /// <summary>One thread group per block of every group, with the tree reduction's scratch.</summary>
        private KernelConfig Blocks(NormalizationGroups p) => kernels.GroupPerItem(p.G * p.S);

        private (NdArray Mean, NdArray Variance) Moments(NdArray x, int a, int g, int b)
        {
            var mean = New(new Shape(g), DType.Float64);
            var variance = New(new Shape(g), DType.Float64);
            var p = Groups(a, g, b);
            var partial = New(new Shape(3 * g * p.S), DType.Float64);
            if (x.DType == DType.Float32)
                kernels.Load<ArrayView<float>, ArrayView<double>, NormalizationGroups>(GpuNormalization.PartialMoments<float, Float32Kind>)(Blocks(p), V<float>(x), V<double>(partial), p);
            else
                kernels.Load<ArrayView<double>, ArrayView<double>, NormalizationGroups>(GpuNormalization.PartialMoments<double, Float64Kind>)(Blocks(p), V<double>(x), V<double>(partial), p);
            kernels.Load<ArrayView<double>, ArrayView<double>, ArrayView<double>, NormalizationGroups>(GpuNormalization.MergeMoments)(kernels.Stride(g), V<double>(partial), V<double>(mean), V<double>(variance), p);
            return (mean, variance);
        }

        public (NdArray Mean, NdArray Variance) GroupMoments(NdArray x, int a, int g, int b)
        {
            using var turn = d.EnterLaunch();
            return Moments(x, a, g, b);
        }

        public NdArray Normalize(NdArray x, int a, int g, int b, double epsilon) => NormalizeWithMoments(x, a, g, b, epsilon).Normalized;

        public (NdArray Normalized, NdArray Mean, NdArray Variance) NormalizeWithMoments(NdArray x, int a, int g, int b, double epsilon)
        {
            using var turn = d.EnterLaunch();
            var r = New(x.Shape, x.DType);
            var (mean, variance) = Moments(x, a, g, b);
            var p = Groups(a, g, b, epsilon);
            var config = kernels.Stride(x.Size);
            if (x.DType == DType.Float32)
                kernels.Load<ArrayView<float>, ArrayView<double>, ArrayView<double>, ArrayView<float>, NormalizationGroups>(GpuNormalization.Normalize<float, Float32Kind>)(config, V<float>(x), V<double>(mean), V<double>(variance), V<float>(r), p);
            else
                kernels.Load<ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<double>, NormalizationGroups>(GpuNormalization.Normalize<double, Float64Kind>)(config, V<double>(x), V<double>(mean), V<double>(variance), V<double>(r), p);
            return (r, mean, variance);
        }

        public NdArray NormalizeJacobian(NdArray x, NdArray u, int a, int g, int b, double epsilon)
        {
            using var turn = d.EnterLaunch();
            var r = New(x.Shape, x.DType);
            var (mean, variance) = Moments(x, a, g, b);
            var p = Groups(a, g, b, epsilon);
            var partial = New(new Shape(2 * g * p.S), DType.Float64);
            var means = New(new Shape(2 * g), DType.Float64);
            var config = kernels.Stride(x.Size);
            if (x.DType == DType.Float32)
                kernels.Load<ArrayView<float>, ArrayView<float>, ArrayView<double>, ArrayView<double>, ArrayView<double>, NormalizationGroups>(GpuNormalization.PartialJacobianSums<float, Float32Kind>)(Blocks(p), V<float>(x), V<float>(u), V<double>(mean), V<double>(variance), V<double>(partial), p);
            else
                kernels.Load<ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<double>, NormalizationGroups>(GpuNormalization.PartialJacobianSums<double, Float64Kind>)(Blocks(p), V<double>(x), V<double>(u), V<double>(mean), V<double>(variance), V<double>(partial), p);
            kernels.Load<ArrayView<double>, ArrayView<double>, int, NormalizationGroups>(GpuNormalization.MergeMeans)(kernels.Stride(g), V<double>(partial), V<double>(means), 2, p);
            if (x.DType == DType.Float32)
                kernels.Load<ArrayView<float>, ArrayView<float>, ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<float>, NormalizationGroups>(GpuNormalization.Jacobian<float, Float32Kind>)(config, V<float>(x), V<float>(u), V<double>(mean), V<double>(variance), V<double>(means), V<float>(r), p);
            else
                kernels.Load<ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<double>, NormalizationGroups>(GpuNormalization.Jacobian<double, Float64Kind>)(config, V<double>(x), V<double>(u), V<double>(mean), V<double>(variance), V<double>(means), V<double>(r), p);
            return r;
        }

        public NdArray NormalizeJacobianTangent(NdArray x, NdArray u, NdArray ju, NdArray v, NdArray? w, int a, int g, int b, double epsilon)
        {
            using var turn = d.EnterLaunch();
            var r = New(x.Shape, x.DType);
            var (mean, variance) = Moments(x, a, g, b);
            var p = Groups(a, g, b, epsilon, w is null ? 0 : 1);
            var partial = New(new Shape(6 * g * p.S), DType.Float64);
            var coefficients = New(new Shape(6 * g), DType.Float64);
            var ww = w ?? v; // read only when HasW is 1
            var config = kernels.Stride(x.Size);
            if (x.DType == DType.Float32)
                kernels.Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<double>, ArrayView<double>, NormalizationGroups>(GpuNormalization.PartialTangentSums<float, Float32Kind>)(Blocks(p), V<float>(x), V<float>(u), V<float>(ju), V<float>(v), V<float>(ww), V<double>(mean), V<double>(partial), p);
            else
                kernels.Load<ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<double>, NormalizationGroups>(GpuNormalization.PartialTangentSums<double, Float64Kind>)(Blocks(p), V<double>(x), V<double>(u), V<double>(ju), V<double>(v), V<double>(ww), V<double>(mean), V<double>(partial), p);
            kernels.Load<ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<double>, NormalizationGroups>(GpuNormalization.TangentCoefficients)(kernels.Stride(g), V<double>(partial), V<double>(mean), V<double>(variance), V<double>(coefficients), p);
            if (x.DType == DType.Float32)
                kernels.Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<double>, ArrayView<float>, NormalizationGroups>(GpuNormalization.JacobianTangent<float, Float32Kind>)(config, V<float>(x), V<float>(ju), V<float>(v), V<float>(ww), V<double>(coefficients), V<float>(r), p);
            else
                kernels.Load<ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<double>, NormalizationGroups>(GpuNormalization.JacobianTangent<double, Float64Kind>)(config, V<double>(x), V<double>(ju), V<double>(v), V<double>(ww), V<double>(coefficients), V<double>(r), p);
            return r;
        }

        public NdArray GroupCovariance(NdArray x, NdArray y, int a, int g, int b)
        {
            using var turn = d.EnterLaunch();
            var r = New(new Shape(g), DType.Float64);
            var (mean, _) = Moments(y, a, g, b);
            var p = Groups(a, g, b);
            var partial = New(new Shape(g * p.S), DType.Float64);
            if (x.DType == DType.Float32)
                kernels.Load<ArrayView<float>, ArrayView<float>, ArrayView<double>, ArrayView<double>, NormalizationGroups>(GpuNormalization.PartialCenteredProduct<float, Float32Kind>)(Blocks(p), V<float>(x), V<float>(y), V<double>(mean), V<double>(partial), p);
            else
                kernels.Load<ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<double>, NormalizationGroups>(GpuNormalization.PartialCenteredProduct<double, Float64Kind>)(Blocks(p), V<double>(x), V<double>(y), V<double>(mean), V<double>(partial), p);
            kernels.Load<ArrayView<double>, ArrayView<double>, int, NormalizationGroups>(GpuNormalization.MergeMeans)(kernels.Stride(g), V<double>(partial), V<double>(r), 1, p);
            return r;
        }

        public (NdArray Mean, NdArray Variance, NdArray Batches) UpdateRunningStatistics(NdArray runningMean, NdArray runningVariance,
            NdArray batches, NdArray mean, NdArray variance, double momentum, double bessel)
        {
            using var turn = d.EnterLaunch();
            var (newMean, newVariance, newBatches) = (New(runningMean.Shape, runningMean.DType), New(runningVariance.Shape, runningVariance.DType), New(batches.Shape, DType.Int64));
            var p = new RunningUpdate { Momentum = momentum, Bessel = bessel };
            var config = kernels.Stride(Math.Max(1, runningMean.Size));
            if (runningMean.DType == DType.Float32)
                kernels.Load<ArrayView<float>, ArrayView<float>, ArrayView<long>, ArrayView<double>, ArrayView<double>, ArrayView<float>, ArrayView<float>, ArrayView<long>, RunningUpdate>(GpuNormalization.UpdateRunningStatistics<float, Float32Kind>)(
                    config, V<float>(runningMean), V<float>(runningVariance), V<long>(batches), V<double>(mean), V<double>(variance), V<float>(newMean), V<float>(newVariance), V<long>(newBatches), p);
            else
                kernels.Load<ArrayView<double>, ArrayView<double>, ArrayView<long>, ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<long>, RunningUpdate>(GpuNormalization.UpdateRunningStatistics<double, Float64Kind>)(
                    config, V<double>(runningMean), V<double>(runningVariance), V<long>(batches), V<double>(mean), V<double>(variance), V<double>(newMean), V<double>(newVariance), V<long>(newBatches), p);
            return (newMean, newVariance, newBatches);
        }

        public NdArray NormalizeScaleShiftCoefficients(NdArray gamma, NdArray beta, NdArray mean, NdArray variance, double epsilon)
        {
            using var turn = d.EnterLaunch();
            int g = (int)gamma.Size;
            var r = New(new Shape(2, g), gamma.DType);
            var p = Groups(1, g, 1, epsilon);
            if (gamma.DType == DType.Float32)
                kernels.Load<ArrayView<float>, ArrayView<float>, ArrayView<double>, ArrayView<double>, ArrayView<float>, NormalizationGroups>(GpuNormalization.ScaleShiftCoefficients<float, Float32Kind>)(kernels.Stride(g), V<float>(gamma), V<float>(beta), V<double>(mean), V<double>(variance), V<float>(r), p);
            else
                kernels.Load<ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<double>, NormalizationGroups>(GpuNormalization.ScaleShiftCoefficients<double, Float64Kind>)(kernels.Stride(g), V<double>(gamma), V<double>(beta), V<double>(mean), V<double>(variance), V<double>(r), p);
            return r;
        }

        public NdArray NormalizeScaleShiftBackward(NdArray x, NdArray u, NdArray gamma, NdArray mean, NdArray variance, int a, int g, int b, double epsilon)
        {
            using var turn = d.EnterLaunch();
            var r = New(new Shape(5, g), x.DType);
            var p = Groups(a, g, b, epsilon);
            var partial = New(new Shape(2 * g * p.S), DType.Float64);
            if (x.DType == DType.Float32)
            {
                kernels.Load<ArrayView<float>, ArrayView<float>, ArrayView<double>, ArrayView<double>, ArrayView<double>, NormalizationGroups>(GpuNormalization.PartialJacobianSums<float, Float32Kind>)(Blocks(p), V<float>(x), V<float>(u), V<double>(mean), V<double>(variance), V<double>(partial), p);
                kernels.Load<ArrayView<double>, ArrayView<float>, ArrayView<double>, ArrayView<double>, ArrayView<float>, NormalizationGroups>(GpuNormalization.ScaleShiftBackward<float, Float32Kind>)(kernels.Stride(g), V<double>(partial), V<float>(gamma), V<double>(mean), V<double>(variance), V<float>(r), p);
            }
            else
            {
                kernels.Load<ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<double>, NormalizationGroups>(GpuNormalization.PartialJacobianSums<double, Float64Kind>)(Blocks(p), V<double>(x), V<double>(u), V<double>(mean), V<double>(variance), V<double>(partial), p);
                kernels.Load<ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<double>, NormalizationGroups>(GpuNormalization.ScaleShiftBackward<double, Float64Kind>)(kernels.Stride(g), V<double>(partial), V<double>(gamma), V<double>(mean), V<double>(variance), V<double>(r), p);
            }
            return r;
        }

        public NdArray NormalizeScaleShiftTangent(NdArray x, NdArray? xDot, NdArray gamma, NdArray beta, NdArray? gammaDot, NdArray? betaDot,
            NdArray mean, NdArray variance, int a, int g, int b, double epsilon)
        {
            using var turn = d.EnterLaunch();
            // A zero tangent is a zero array here: rare (the first layer's input, a frozen γ), and one kernel serves.
            xDot ??= Full(x.Shape, x.DType, 0);
            gammaDot ??= Full(gamma.Shape, gamma.DType, 0);
            betaDot ??= Full(beta.Shape, beta.DType, 0);
            return x.DType == DType.Float32
                ? ScaleShiftTangent<float, Float32Kind>(x, xDot, gamma, beta, gammaDot, betaDot, mean, variance, Groups(a, g, b, epsilon))
                : ScaleShiftTangent<double, Float64Kind>(x, xDot, gamma, beta, gammaDot, betaDot, mean, variance, Groups(a, g, b, epsilon));
        }

        private NdArray ScaleShiftTangent<T, K>(NdArray x, NdArray xDot, NdArray gamma, NdArray beta, NdArray gammaDot, NdArray betaDot, NdArray mean, NdArray variance, NormalizationGroups p)
            where T : unmanaged, System.Numerics.IFloatingPointIeee754<T> where K : struct, IScalarKind<T>
        {
            var r = New(new Shape(4, p.G), x.DType);
            var partial = New(new Shape(2 * p.G * p.S), DType.Float64);
            kernels.Load<ArrayView<T>, ArrayView<T>, ArrayView<double>, ArrayView<double>, ArrayView<double>, NormalizationGroups>(GpuNormalization.PartialJacobianSums<T, K>)(Blocks(p), V<T>(x), V<T>(xDot), V<double>(mean), V<double>(variance), V<double>(partial), p);
            kernels.Load<ArrayView<double>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<double>, ArrayView<double>, ArrayView<T>, NormalizationGroups>(GpuNormalization.ScaleShiftTangent<T, K>)(
                kernels.Stride(p.G), V<double>(partial), V<T>(gamma), V<T>(beta), V<T>(gammaDot), V<T>(betaDot), V<double>(mean), V<double>(variance), V<T>(r), p);
            return r;
        }

        public NdArray NormalizeScaleShiftBackwardTangent(NdArray x, NdArray u, NdArray gamma, NdArray? xDot, NdArray? gammaDot, NdArray? uDot,
            NdArray mean, NdArray variance, int a, int g, int b, double epsilon)
        {
            using var turn = d.EnterLaunch();
            xDot ??= Full(x.Shape, x.DType, 0);
            uDot ??= Full(x.Shape, x.DType, 0);
            gammaDot ??= Full(gamma.Shape, gamma.DType, 0);
            return x.DType == DType.Float32
                ? ScaleShiftBackwardTangent<float, Float32Kind>(x, u, gamma, xDot, gammaDot, uDot, mean, variance, Groups(a, g, b, epsilon))
                : ScaleShiftBackwardTangent<double, Float64Kind>(x, u, gamma, xDot, gammaDot, uDot, mean, variance, Groups(a, g, b, epsilon));
        }

        private NdArray ScaleShiftBackwardTangent<T, K>(NdArray x, NdArray u, NdArray gamma, NdArray xDot, NdArray gammaDot, NdArray uDot, NdArray mean, NdArray variance, NormalizationGroups p)
            where T : unmanaged, System.Numerics.IFloatingPointIeee754<T> where K : struct, IScalarKind<T>
        {
            var r = New(new Shape(5, p.G), x.DType);
            int section = 2 * p.G * p.S;
            // Block sums of (x, u), (x, ẋ), (x, u̇) against x̂ and of u·ẋ, in one buffer the last kernel merges.
            var partial = New(new Shape(3 * section + p.G * p.S), DType.Float64);
            var sums = V<double>(partial);
            void JacobianSums(NdArray v, int at) =>
                kernels.Load<ArrayView<T>, ArrayView<T>, ArrayView<double>, ArrayView<double>, ArrayView<double>, NormalizationGroups>(GpuNormalization.PartialJacobianSums<T, K>)(
                    Blocks(p), V<T>(x), V<T>(v), V<double>(mean), V<double>(variance), sums.SubView(at, section), p);
            JacobianSums(u, 0);
            JacobianSums(xDot, section);
            JacobianSums(uDot, 2 * section);
            kernels.Load<ArrayView<T>, ArrayView<T>, ArrayView<double>, NormalizationGroups>(GpuNormalization.PartialProduct<T, K>)(Blocks(p), V<T>(u), V<T>(xDot), sums.SubView(3 * section, p.G * p.S), p);
            kernels.Load<ArrayView<double>, ArrayView<T>, ArrayView<T>, ArrayView<double>, ArrayView<double>, ArrayView<T>, NormalizationGroups>(GpuNormalization.ScaleShiftBackwardTangent<T, K>)(
                kernels.Stride(p.G), sums, V<T>(gamma), V<T>(gammaDot), V<double>(mean), V<double>(variance), V<T>(r), p);
            return r;
        }

        public NdArray GroupMeanProduct(NdArray x, NdArray y, int a, int g, int b)
        {
            using var turn = d.EnterLaunch();
            var r = New(new Shape(g), DType.Float64);
            var p = Groups(a, g, b);
            var partial = New(new Shape(g * p.S), DType.Float64);
            if (x.DType == DType.Float32)
                kernels.Load<ArrayView<float>, ArrayView<float>, ArrayView<double>, NormalizationGroups>(GpuNormalization.PartialProduct<float, Float32Kind>)(Blocks(p), V<float>(x), V<float>(y), V<double>(partial), p);
            else
                kernels.Load<ArrayView<double>, ArrayView<double>, ArrayView<double>, NormalizationGroups>(GpuNormalization.PartialProduct<double, Float64Kind>)(Blocks(p), V<double>(x), V<double>(y), V<double>(partial), p);
            kernels.Load<ArrayView<double>, ArrayView<double>, int, NormalizationGroups>(GpuNormalization.MergeMeans)(kernels.Stride(g), V<double>(partial), V<double>(r), 1, p);
            return r;
        }

        public NdArray ScaleShift(NdArray x, NdArray scale, NdArray shift, int a, int g, int b, NdArray? addend = null, bool relu = false)
        {
            using var turn = d.EnterLaunch();
            var r = New(x.Shape, x.DType);
            if (x.Size == 0) return r;
            var config = kernels.Stride(x.Size);
            var z = addend ?? x; // read only when the addend flag is 1
            var p = new AffineGroups { G = g, B = b, Addend = addend is null ? 0 : 1, Relu = relu ? 1 : 0 };
            if (x.DType == DType.Float32)
                kernels.Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AffineGroups>(GpuNormalization.ScaleShift)(config, V<float>(x), V<float>(scale), V<float>(shift), V<float>(z), V<float>(r), p);
            else
                kernels.Load<ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<double>, AffineGroups>(GpuNormalization.ScaleShift)(config, V<double>(x), V<double>(scale), V<double>(shift), V<double>(z), V<double>(r), p);
            return r;
        }

        public NdArray ScaleShift(NdArray x, NdArray scale, NdArray shift, NdArray x2, NdArray scale2, int a, int g, int b, NdArray? addend = null)
        {
            using var turn = d.EnterLaunch();
            var r = New(x.Shape, x.DType);
            if (x.Size == 0) return r;
            var config = kernels.Stride(x.Size);
            var z = addend ?? x;
            var p = new AffineGroups { G = g, B = b, Addend = addend is null ? 0 : 1 };
            if (x.DType == DType.Float32)
                kernels.Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AffineGroups>(GpuNormalization.ScaleShiftPair)(config, V<float>(x), V<float>(scale), V<float>(shift), V<float>(x2), V<float>(scale2), V<float>(z), V<float>(r), p);
            else
                kernels.Load<ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<double>, AffineGroups>(GpuNormalization.ScaleShiftPair)(config, V<double>(x), V<double>(scale), V<double>(shift), V<double>(x2), V<double>(scale2), V<double>(z), V<double>(r), p);
            return r;
        }
    }
}
