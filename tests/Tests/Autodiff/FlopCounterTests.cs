using Curvature.Autodiff;
using Curvature.Engine;

namespace Curvature.Tests.Autodiff;

/// <summary>FLOP counting by the primitives, with nested scopes counted apart.</summary>
public class FlopCounterTests
{
    [Fact]
    public void Matmul_counts_two_m_n_k_and_element_wise_ops_one_per_element()
    {
        Tensor a = NdArray.Ones(new Shape(3, 4)), b = NdArray.Ones(new Shape(4, 5));
        var outer = new FlopCounter();
        var inner = new FlopCounter();
        using (FlopCounter.Count(outer))
        {
            var c = a.MatMul(b);                    // 2·3·5·4 = 120
            using (FlopCounter.Count(inner)) _ = c.Exp(); // 15, counted only by the inner scope
            _ = c + c;                              // 15
        }
        _ = a.MatMul(b);                            // outside every scope: not counted
        Assert.Equal(135, outer.Flops);
        Assert.Equal(15, inner.Flops);
        Assert.Equal(120, outer.ProductFlops); // the product alone
        Assert.Equal(0, inner.ProductFlops);
    }

    [Fact]
    public void Product_flops_are_the_convolutions_and_products_of_a_gradient_and_nothing_else()
    {
        // conv 1×2×5×5 → 3 channels, 3×3, padding 1: 2·N·O·Q·K = 2·1·3·25·18 = 2,700 per member; the gradient with
        // respect to the weight runs the forward and the weight adjoint (the input's adjoint is not asked for).
        var rng = new RandomGenerator(3);
        Tensor x = rng.Normal(new Shape(1, 2, 5, 5));
        Tensor w = rng.Normal(new Shape(3, 2, 3, 3));
        var counter = new FlopCounter();
        using (FlopCounter.Count(counter)) Derivatives.Grad(p => x.Conv2d(p, stride: 1, padding: 1).Tanh().Sum(), w);
        Assert.Equal(2 * 2700, counter.ProductFlops);
        Assert.True(counter.Flops > counter.ProductFlops, "the tanh and the sum are counted in Flops only");
    }

    [Fact]
    public void A_gradient_counts_its_forward_and_backward_products()
    {
        Tensor x = NdArray.Ones(new Shape(8, 6));
        Tensor w = NdArray.Ones(new Shape(3, 6));
        var counter = new FlopCounter();
        using (FlopCounter.Count(counter)) Derivatives.Grad(p => x.MatMul(p, transB: true).Sum(), w);
        // forward 2·8·3·6 = 288, backward w̄ = ȳᵀx: 2·3·6·8 = 288, plus element-wise work
        Assert.InRange(counter.Flops, 576, 576 + 200);
    }
}
