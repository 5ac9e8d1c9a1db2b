using Curvature.Engine;
using Curvature.Models;
using Curvature.Models.Layers;
using Curvature.Spectral;

namespace Curvature.Tests.Spectral;

/// <summary>The Gauss-Newton product: the Hessian for a linear model, positive semi-definite always.</summary>
public class GaussNewtonTests
{
    [Theory]
    [InlineData("mse")]
    [InlineData("ce")]
    public void For_a_model_linear_in_its_parameters_gauss_newton_is_the_hessian(string loss)
    {
        var rng = new RandomGenerator(1);
        var model = new Sequential(new Linear(5, 3, rng, dtype: DType.Float64));
        var x = rng.Normal(new Shape(9, 5), dtype: DType.Float64);
        var y = rng.Integers(new Shape(9), 3);
        var gn = GaussNewtonOperator.ForModel(model, loss, x, y);
        var h = new HessianOperator(Loss.Function(model, loss, x, y), model.Parameters().Select(p => p.Data).ToArray());
        for (int t = 0; t < 3; t++)
        {
            var v = rng.Normal(new Shape((int)gn.Dimension), dtype: DType.Float64);
            GradCheck.AssertClose(gn.Apply(v), h.Apply(v), 1e-12, 1e-14, $"GN vs Hessian ({loss})");
        }
    }

    [Fact]
    public void Gauss_newton_of_an_mlp_is_symmetric_and_positive_semidefinite()
    {
        var rng = new RandomGenerator(2);
        var model = Mlp.Create(rng, width: 4, inputs: 3, classes: 3, dtype: DType.Float64);
        var x = rng.Normal(new Shape(7, 3), dtype: DType.Float64);
        var gn = GaussNewtonOperator.ForModel(model, "ce", x, rng.Integers(new Shape(7), 3));
        for (int t = 0; t < 5; t++)
        {
            var u = rng.Normal(new Shape((int)gn.Dimension), dtype: DType.Float64);
            var v = rng.Normal(new Shape((int)gn.Dimension), dtype: DType.Float64);
            Assert.True(v.Dot(gn.Apply(v)) >= -1e-12);
            Assert.Equal(u.Dot(gn.Apply(v)), v.Dot(gn.Apply(u)), 1e-10);
        }
    }
}
