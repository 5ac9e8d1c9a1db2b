using Curvature.Kernels.Cpu;

namespace Curvature.Tests.Kernels;

/// <summary>erf against reference values and its identities.</summary>
public class ErrorFunctionTests
{
    [Theory]
    [InlineData(0.0, 0.0)]
    [InlineData(0.1, 0.1124629160182849)]
    [InlineData(0.5, 0.5204998778130465)]
    [InlineData(1.0, 0.8427007929497149)]
    [InlineData(2.0, 0.9953222650189527)]
    [InlineData(2.5, 0.9995930479825550)]
    [InlineData(3.0, 0.9999779095030014)]
    [InlineData(4.0, 0.9999999845827421)]
    [InlineData(6.0, 1.0)]
    public void Matches_reference_values(double x, double expected)
    {
        Assert.Equal(expected, ErrorFunction.Erf(x), 2e-15);
        Assert.Equal(-expected, ErrorFunction.Erf(-x), 2e-15);
    }

    [Fact]
    public void Is_continuous_across_the_switch_and_its_derivative_matches_the_gaussian()
    {
        Assert.Equal(ErrorFunction.Erf(3.0 - 1e-12), ErrorFunction.Erf(3.0 + 1e-12), 1e-15);
        for (double x = -4; x <= 4; x += 0.37)
        {
            double fd = (ErrorFunction.Erf(x + 1e-5) - ErrorFunction.Erf(x - 1e-5)) / 2e-5;
            Assert.Equal(2 / Math.Sqrt(Math.PI) * Math.Exp(-x * x), fd, 1e-9);
        }
    }
}
