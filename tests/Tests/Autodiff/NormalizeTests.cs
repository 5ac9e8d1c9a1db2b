using Curvature.Autodiff;
using Curvature.Engine;
using FsCheck;
using FsCheck.Fluent;
using Curvature.Kernels;

namespace Curvature.Tests.Autodiff;

/// <summary>The fused normalization against its composite definition, in both group layouts and both precisions.</summary>
public class NormalizeTests
{
    private static NdArray Composite(NdArray x, int[] axes, double eps)
    {
        var centered = x - x.Sum(axes, keepDims: true) * (1.0 / axes.Aggregate(1L, (p, a) => p * x.Shape[a]));
        var variance = (centered * centered).Sum(axes, keepDims: true) * (1.0 / axes.Aggregate(1L, (p, a) => p * x.Shape[a]));
        return centered / (variance + eps).Apply(Curvature.Kernels.UnaryOp.Sqrt);
    }

    [Fact]
    public void Matches_the_composite_definition_for_batch_and_layer_groups()
    {
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(40), Prop.ForAll(Gen.Choose(0, 1_000_000).ToArbitrary(), seed =>
        {
            var rng = new RandomGenerator((ulong)seed);
            var x = rng.Normal(new Shape(3, 4, 5, 7), 0.5, 2, DType.Float64);
            GradCheck.AssertClose(x.Normalize(1, 2, 1e-5), Composite(x, [0, 2, 3], 1e-5), 1e-12, 1e-12, "batch-norm groups");
            GradCheck.AssertClose(x.Normalize(0, 3, 1e-5), Composite(x, [3], 1e-5), 1e-12, 1e-12, "layer-norm groups");
            var u = rng.Normal(x.Shape, dtype: DType.Float64);
            // J·u against a central difference of the normalization.
            var fd = (x + u * 1e-6).Normalize(1, 2, 1e-5) - (x - u * 1e-6).Normalize(1, 2, 1e-5);
            GradCheck.AssertClose(x.NormalizeJacobian(u, 1, 2, 1e-5), fd * (1 / 2e-6), 1e-7, 1e-8, "J·u");
        }));
    }

    [Fact]
    public void Normalizing_with_moments_gives_the_same_output_and_the_moments_GroupMoments_gives()
    {
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(20), Prop.ForAll(Gen.Choose(0, 1_000_000).ToArbitrary(), Gen.Elements(DType.Float32, DType.Float64).ToArbitrary(), (seed, dtype) =>
        {
            var x = new RandomGenerator((ulong)seed).Normal(new Shape(3, 4, 5, 7), 1.5, 2, dtype);
            foreach (var (s, e) in new[] { (1, 2), (0, 3) })
            {
                var (normalized, mean, variance) = x.NormalizeWithMoments(s, e, 1e-5);
                var (groupMean, groupVariance) = x.GroupMoments(s, e);
                Assert.Equal(x.Normalize(s, e, 1e-5).Cast(DType.Float64).ToArray<double>(), normalized.Cast(DType.Float64).ToArray<double>());
                Assert.Equal(groupMean.ToArray<double>(), mean.ToArray<double>());
                Assert.Equal(groupVariance.ToArray<double>(), variance.ToArray<double>());
            }
        }));
    }

    [Fact]
    public void Fused_jacobian_tangent_matches_its_composed_definition_and_finite_differences()
    {
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(30), Prop.ForAll(Gen.Choose(0, 1_000_000).ToArbitrary(), Gen.Elements(true, false).ToArbitrary(), (seed, withW) =>
        {
            var rng = new RandomGenerator((ulong)seed);
            var shape = new Shape(3, 4, 5, 7);
            var (x, u, v, w) = (rng.Normal(shape, 0.5, 2, DType.Float64), rng.Normal(shape, dtype: DType.Float64), rng.Normal(shape, dtype: DType.Float64), rng.Normal(shape, dtype: DType.Float64));
            foreach (var (s, e) in new[] { (1, 2), (0, 3) })
            {
                var ju = x.NormalizeJacobian(u, s, e, 1e-5);
                var fused = x.NormalizeJacobianTangent(u, ju, v, withW ? w : null, s, e, 1e-5);
                var op = new Curvature.Autodiff.Primitives.NormalizeJacobianTangent(s, e, 1e-5);
                Tensor[] inputs = withW ? [x, u, ju, v, w] : [x, u, ju, v];
                GradCheck.AssertClose(fused, op.Reference(inputs).Data, 1e-11, 1e-11, $"fused vs composed [{s},{e})");
                // The tangent of (x, u) ↦ J(x)·u along (v, w), by a central difference.
                var wOr0 = withW ? w : u.ZerosLike();
                var fd = (x + v * 1e-6).NormalizeJacobian(u + wOr0 * 1e-6, s, e, 1e-5) - (x - v * 1e-6).NormalizeJacobian(u - wOr0 * 1e-6, s, e, 1e-5);
                GradCheck.AssertClose(fused, fd * (1 / 2e-6), 1e-6, 1e-7, $"tangent vs finite difference [{s},{e})");
            }
        }));
    }

    [Fact]
    public void Float32_statistics_do_not_cancel_on_a_large_mean()
    {
        // Values 1000 + N(0, 1): a one-pass E[x²] − E[x]² would lose every digit of the variance in float32.
        var rng = new RandomGenerator(3);
        var x64 = rng.Normal(new Shape(8, 3, 16, 16), 1000, 1, DType.Float64);
        var y32 = x64.Cast(DType.Float32).Normalize(1, 2, 1e-5).Cast(DType.Float64);
        GradCheck.AssertClose(y32, Composite(x64.Cast(DType.Float32).Cast(DType.Float64), [0, 2, 3], 1e-5), 2e-4, 2e-4, "float32 normalization");
        // The Jacobian product and its tangent center each segment on its own mean: no cancellation either.
        var x = x64.Cast(DType.Float32);
        var (u, v, w) = (rng.Normal(x.Shape, dtype: DType.Float32), rng.Normal(x.Shape, dtype: DType.Float32), rng.Normal(x.Shape, dtype: DType.Float32));
        var ju = x.NormalizeJacobian(u, 1, 2, 1e-5);
        GradCheck.AssertClose(ju.Cast(DType.Float64), x.Cast(DType.Float64).NormalizeJacobian(u.Cast(DType.Float64), 1, 2, 1e-5), 2e-3, 2e-3, "float32 J·u");
        var t64 = x.Cast(DType.Float64).NormalizeJacobianTangent(u.Cast(DType.Float64), ju.Cast(DType.Float64), v.Cast(DType.Float64), w.Cast(DType.Float64), 1, 2, 1e-5);
        GradCheck.AssertClose(x.NormalizeJacobianTangent(u, ju, v, w, 1, 2, 1e-5).Cast(DType.Float64), t64, 2e-3, 2e-3, "float32 tangent");
        // The covariance centers y's segments too, and the fused BatchNorm's x·(γr) + (β − μγr) loses only x's rounding.
        var x32as64 = x.Cast(DType.Float64);
        GradCheck.AssertClose(u.GroupCovariance(x, 1, 2).Cast(DType.Float64), u.Cast(DType.Float64).GroupCovariance(x32as64, 1, 2), 2e-4, 2e-4, "float32 covariance");
        var (gamma, beta) = (rng.Normal(new Shape(3), dtype: DType.Float32), rng.Normal(new Shape(3), dtype: DType.Float32));
        var fused = new Curvature.Autodiff.Primitives.NormalizeScaleShift(1, 2, 1e-5).Apply(x, gamma, beta).Data.Cast(DType.Float64);
        var reference = x32as64.Normalize(1, 2, 1e-5).ScaleShift(gamma.Cast(DType.Float64), beta.Cast(DType.Float64), 1, 2);
        GradCheck.AssertClose(fused, reference, 2e-4, 2e-4, "float32 fused BatchNorm");
    }

    [Fact]
    public void Fused_batchnorm_equals_normalize_then_scale_shift_in_value_gradient_and_hvp()
    {
        // relu(x̂·γ + β + z) as one primitive against the same layer composed of Normalize and ScaleShift: the loss
        // Σ y·w, its gradient in every input and its Hessian-vector product (which runs the fused rules' shared
        // tangents of μ and r) agree to float64 rounding, with and without the residual and the ReLU.
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(12), Prop.ForAll(Gen.Choose(0, 1_000_000).ToArbitrary(), Gen.Elements(true, false).ToArbitrary(), (seed, relu) =>
        {
            var rng = new RandomGenerator((ulong)seed);
            var shape = new Shape(4, 3, 5, 6);
            var w = rng.Normal(shape, dtype: DType.Float64);
            foreach (bool residual in new[] { true, false })
            {
                Tensor[] at = residual
                    ? [rng.Normal(shape, 2, 3, DType.Float64), rng.Normal(new Shape(3), dtype: DType.Float64), rng.Normal(new Shape(3), dtype: DType.Float64), rng.Normal(shape, dtype: DType.Float64)]
                    : [rng.Normal(shape, 2, 3, DType.Float64), rng.Normal(new Shape(3), dtype: DType.Float64), rng.Normal(new Shape(3), dtype: DType.Float64)];
                var direction = at.Select(t => (Tensor)rng.Normal(t.Shape, dtype: DType.Float64)).ToArray();
                Tensor Fused(Tensor[] p) => (new Curvature.Autodiff.Primitives.NormalizeScaleShift(1, 2, 1e-5, relu).Apply(p) * w).Sum();
                Tensor Composed(Tensor[] p) => (new Curvature.Autodiff.Primitives.ScaleShift(1, 2, relu).Apply([p[0].Normalize(1, 2, 1e-5), .. p[1..]]) * w).Sum();
                var (fused, composed) = (Derivatives.Hvp(Fused, at, direction), Derivatives.Hvp(Composed, at, direction));
                string what = $"relu {relu}, residual {residual}";
                GradCheck.AssertClose(fused.Value.Data, composed.Value.Data, 1e-12, 1e-12, $"value, {what}");
                for (int i = 0; i < at.Length; i++)
                {
                    GradCheck.AssertClose(fused.Gradient[i].Data, composed.Gradient[i].Data, 1e-10, 1e-10, $"gradient {i}, {what}");
                    GradCheck.AssertClose(fused.Product[i].Data, composed.Product[i].Data, 1e-9, 1e-9, $"HVP {i}, {what}");
                }
            }
        }));
    }

    [Fact]
    public void The_backward_kernel_equals_its_op_by_op_reference_and_the_coefficients_their_float64_formula()
    {
        // NormalizeScaleShiftBackward's one-pass kernel against the same rows written op by op (sums, covariance, rstd),
        // for BatchNorm and LayerNorm groups with means far from zero; float32 against the float64 reference. The
        // forward's coefficients are s = γ·r and t = β − μ·s in float64 rounded once, bit for bit.
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(20), Prop.ForAll(Gen.Choose(0, 1_000_000).ToArbitrary(), Gen.Elements(DType.Float32, DType.Float64).ToArbitrary(), (seed, dtype) =>
        {
            var rng = new RandomGenerator((ulong)seed);
            var x = rng.Normal(new Shape(3, 4, 5, 7), 2, 3, DType.Float64);
            var u = rng.Normal(x.Shape, -1, 1.5, DType.Float64);
            foreach (var (s, e) in new[] { (1, 2), (0, 3) })
            {
                var groups = x.GroupShape(s, e);
                var gamma = rng.Normal(groups, dtype: DType.Float64);
                var beta = rng.Normal(groups, dtype: DType.Float64);
                var op = new Curvature.Autodiff.Primitives.NormalizeScaleShiftBackward(s, e, 1e-5);
                var reference = op.Reference(x, gamma, u).Data;
                var fused = op.Apply(x.Cast(dtype), gamma.Cast(dtype), u.Cast(dtype)).Data;
                Assert.Equal(reference.Shape, fused.Shape);
                double tolerance = dtype == DType.Float64 ? 1e-11 : 2e-5;
                GradCheck.AssertClose(fused.Cast(DType.Float64), reference, tolerance, tolerance, $"backward rows, groups [{s},{e}), {dtype.Name()}");

                // The tangent primitives' kernels against their op-by-op references likewise.
                var (xDot, uDot) = (rng.Normal(x.Shape, dtype: DType.Float64), rng.Normal(x.Shape, dtype: DType.Float64));
                var (gammaDot, betaDot) = (rng.Normal(groups, dtype: DType.Float64), rng.Normal(groups, dtype: DType.Float64));
                Tensor[] forwardArgs = [x, gamma, beta, xDot, gammaDot, betaDot], backwardArgs = [x, gamma, u, xDot, gammaDot, uDot];
                var tangent = new Curvature.Autodiff.Primitives.NormalizeScaleShiftTangent(s, e, 1e-5);
                GradCheck.AssertClose(tangent.Apply(forwardArgs.Select(a => (Tensor)a.Data.Cast(dtype)).ToArray()).Data.Cast(DType.Float64), tangent.Reference(forwardArgs).Data,
                    tolerance, tolerance, $"forward tangent rows, groups [{s},{e}), {dtype.Name()}");
                var backwardTangent = new Curvature.Autodiff.Primitives.NormalizeScaleShiftBackwardTangent(s, e, 1e-5);
                GradCheck.AssertClose(backwardTangent.Apply(backwardArgs.Select(a => (Tensor)a.Data.Cast(dtype)).ToArray()).Data.Cast(DType.Float64), backwardTangent.Reference(backwardArgs).Data,
                    tolerance * 10, tolerance * 10, $"backward tangent rows, groups [{s},{e}), {dtype.Name()}");

                var xt = x.Cast(dtype);
                var (mean, variance) = xt.GroupMoments(s, e);
                var coefficients = xt.ScaleShiftCoefficients(gamma.Cast(dtype), beta.Cast(dtype), mean, variance, s, e, 1e-5);
                var scale = gamma.Cast(dtype).Cast(DType.Float64).Reshape(mean.Shape) * (variance + 1e-5).Apply(Curvature.Kernels.UnaryOp.Sqrt).Apply(Curvature.Kernels.UnaryOp.Reciprocal);
                var shift = beta.Cast(dtype).Cast(DType.Float64).Reshape(mean.Shape) - mean * scale;
                Assert.Equal(scale.Cast(dtype).ToDoubleArray(), coefficients.Rows(0, 1).ToDoubleArray());
                Assert.Equal(shift.Cast(dtype).ToDoubleArray(), coefficients.Rows(1, 1).ToDoubleArray());
            }
        }));
    }

    [Fact]
    public void Moments_that_are_not_the_groups_float64_moments_are_named()
    {
        var x = NdArray.Zeros(new Shape(2, 3, 4));
        var (mean, variance) = x.GroupMoments(1, 2);
        var e = Assert.Throws<ArgumentException>(() => x.ScaleShiftBackward(x, NdArray.Zeros(new Shape(3)), mean.Cast(DType.Float32), variance, 1, 2, 1e-5));
        Assert.Contains("scale_shift_backward: moments float32 [3]", e.Message);
        Assert.Contains("expected float64 with 3 values", e.Message);
        e = Assert.Throws<ArgumentException>(() => x.ScaleShiftCoefficients(NdArray.Zeros(new Shape(2)), NdArray.Zeros(new Shape(3)), mean, variance, 1, 2, 1e-5));
        Assert.Contains("scale_shift_coefficients: γ [2] for 3 groups of [2, 3, 4]; expected 3 values", e.Message);
        e = Assert.Throws<ArgumentException>(() => x.ScaleShiftBackward(NdArray.Zeros(new Shape(2, 3)), NdArray.Zeros(new Shape(3)), mean, variance, 1, 2, 1e-5));
        Assert.Contains("scale_shift_backward: x [2, 3, 4] and u [2, 3]; expected the same shape", e.Message);
    }

    [Fact]
    public void Bad_group_axes_are_named()
    {
        var e = Assert.Throws<ArgumentException>(() => NdArray.Zeros(new Shape(2, 3)).Normalize(1, 3, 1e-5));
        Assert.Contains("group axes [1, 3) of a rank-2 array", e.Message);
    }
}
