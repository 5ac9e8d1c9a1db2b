using Curvature.Autodiff;
using Curvature.Engine;

namespace Curvature.Tests.Autodiff;

/// <summary>Nested derivatives keep their perturbations apart (Siskind and Pearlmutter; DiffSharp's tests).</summary>
public class NestingTests
{
    private static Tensor S(double v) => NdArray.Scalar(v, DType.Float64);

    [Fact]
    public void Perturbation_confusion_forward_over_forward()
    {
        // d/dx [x · d/dy (x + y) at y = 1] at x = 1 is 1; confusing the two perturbations gives 2.
        var (_, d) = Derivatives.Jvp(x => x * Derivatives.Jvp(y => x + y, S(1), S(1)).Tangent, S(1), S(1));
        Assert.Equal(1.0, d.ToScalar());
    }

    [Fact]
    public void Perturbation_confusion_reverse_over_reverse()
    {
        var g = Derivatives.Grad(x => x * Derivatives.Grad(y => x + y, S(1)), S(1));
        Assert.Equal(1.0, g.ToScalar());
    }

    [Fact]
    public void Perturbation_confusion_mixed_modes()
    {
        var g = Derivatives.Grad(x => x * Derivatives.Jvp(y => x * y, S(2), S(1)).Tangent, S(3));
        Assert.Equal(6.0, g.ToScalar()); // d/dx (x · x) = 2x at 3
        var (_, t) = Derivatives.Jvp(x => x * Derivatives.Grad(y => x * y * y, S(2)), S(3), S(1));
        Assert.Equal(24.0, t.ToScalar()); // d/dx (x · 4x) = 8x at 3
    }

    [Fact]
    public void Third_derivative_by_nesting()
    {
        // f = x⁴: f''' = 24x, at x = 1.5 that is 36.
        Tensor D(Func<Tensor, Tensor> f, Tensor x) => Derivatives.Grad(f, x);
        var third = D(a => D(b => D(c => c.Pow(4), b), a), S(1.5));
        Assert.Equal(36.0, third.ToScalar(), 1e-10);
    }

    [Fact]
    public void Hvp_of_a_quadratic_is_the_symmetric_part_times_v()
    {
        var rng = new RandomGenerator(3);
        var a = rng.Normal(new Shape(6, 6), dtype: DType.Float64);
        var w = rng.Normal(new Shape(6, 1), dtype: DType.Float64);
        var v = rng.Normal(new Shape(6, 1), dtype: DType.Float64);
        Tensor F(Tensor x) => (x.MatMul(((Tensor)a).MatMul(x), transA: true) * 0.5).Sum();
        var hv = Derivatives.Hvp(F, w, v).Data;
        var expected = (a + a.Transpose()).MatMul(v) * 0.5;
        GradCheck.AssertClose(hv, expected, 1e-13, 1e-13, "Hv of ½xᵀAx");
    }

    [Fact]
    public void Gradient_of_an_unused_argument_is_zero()
    {
        var (value, grads) = Derivatives.ValueAndGrad(x => x[0].Exp().Sum(), [S(0), NdArray.Ones(new Shape(2), DType.Float64)]);
        Assert.Equal(1.0, value.ToScalar());
        Assert.Equal(new double[] { 0, 0 }, grads[1].ToArray<double>());
    }

    [Fact]
    public void Grad_of_a_non_scalar_names_the_shape()
    {
        var e = Assert.Throws<ArgumentException>(() => Derivatives.Grad(x => x * 2.0, (Tensor)NdArray.Ones(new Shape(3), DType.Float64)));
        Assert.Contains("[3]", e.Message);
    }
}
