using Curvature.Autodiff;
using Curvature.Engine;
using Curvature.Models;
using Curvature.Models.Layers;

namespace Curvature.Tests.Models;

/// <summary>LayerNorm, GELU and Embedding: PyTorch's values on hand-computed examples, exact derivatives to second order.</summary>
public class LayerTests
{
    [Fact]
    public void Layer_norm_matches_a_hand_computation()
    {
        var ln = new LayerNorm(4, dtype: DType.Float64);
        ln.Weight.Data = NdArray.FromArray(new[] { 1.0, 2, 0.5, -1 }, new Shape(4));
        ln.Bias.Data = NdArray.FromArray(new[] { 0.0, 0.1, 0.2, 0.3 }, new Shape(4));
        var x = NdArray.FromArray(new[] { 1.0, 2, 3, 4 }, new Shape(1, 4));
        // μ = 2.5, σ² = 1.25, (x − μ)/√(σ² + 1e-5) = [−1.5, −0.5, 0.5, 1.5] / 1.1180384...
        double s = Math.Sqrt(1.25 + 1e-5);
        double[] expected = [-1.5 / s * 1 + 0, -0.5 / s * 2 + 0.1, 0.5 / s * 0.5 + 0.2, 1.5 / s * -1 + 0.3];
        var y = ln.Forward(Bindings.Constant(ln, false), x).ToArray<double>();
        for (int i = 0; i < 4; i++) Assert.Equal(expected[i], y[i], 1e-12);
    }

    [Fact]
    public void Layer_norm_derivatives_are_exact_to_second_order()
    {
        var rng = new RandomGenerator(1);
        var ln = new LayerNorm(5, dtype: DType.Float64);
        var ps = ln.Parameters();
        GradCheck.Check(a => ln.Forward(new Bindings(ps, [a[1], a[2]], true), a[0]).Tanh(),
            [rng.Normal(new Shape(3, 5), dtype: DType.Float64), rng.Normal(new Shape(5), dtype: DType.Float64), rng.Normal(new Shape(5), dtype: DType.Float64)],
            order: 2, seed: 3, name: "layer_norm");
    }

    [Fact]
    public void Gelu_matches_pytorch_values_and_its_derivatives_are_exact()
    {
        // torch.nn.functional.gelu(torch.tensor([-2., -0.5, 0., 0.5, 2.]), approximate='none')
        double[] expected = [-0.04550026389635842, -0.15426876936299347, 0, 0.34573123063700656, 1.9544997361036416];
        var y = ((Tensor)NdArray.FromArray(new[] { -2.0, -0.5, 0, 0.5, 2 }, new Shape(5))).Gelu().ToArray<double>();
        for (int i = 0; i < 5; i++) Assert.Equal(expected[i], y[i], 1e-14);
        GradCheck.Check(a => a[0].Gelu(), [new RandomGenerator(2).Normal(new Shape(7), dtype: DType.Float64)], order: 2, seed: 4, name: "gelu");
    }

    [Fact]
    public void Embedding_looks_up_rows_and_its_gradient_accumulates_repeated_ids()
    {
        var emb = new Embedding(5, 3, new RandomGenerator(3), DType.Float64);
        var ids = NdArray.FromArray(new long[] { 4, 1, 4 }, new Shape(3));
        var ps = emb.Parameters();
        var table = emb.Weight.Data.ToArray<double>();
        var rows = emb.Forward(Bindings.Constant(emb, false), ids).ToArray<double>();
        Assert.Equal(table[12..15], rows[0..3]);
        Assert.Equal(table[3..6], rows[3..6]);
        var g = Derivatives.Grad(w => emb.Forward(new Bindings(ps, [w], false), ids).Sum(), (Tensor)emb.Weight.Data).ToArray<double>();
        Assert.Equal(new double[] { 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 2, 2, 2 }, g);
        Assert.Equal(new[] { "weight" }, emb.NamedParameters().Select(p => p.Name));
    }
}
