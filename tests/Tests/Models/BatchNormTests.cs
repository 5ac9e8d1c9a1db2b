using Curvature.Autodiff;
using Curvature.Engine;
using Curvature.Models;
using Curvature.Models.Layers;

namespace Curvature.Tests.Models;

/// <summary>BatchNorm2d: training and evaluation modes, the running-statistics update, exact HVPs through batch statistics.</summary>
public class BatchNormTests
{
    [Fact]
    public void Training_mode_normalizes_with_batch_statistics_and_updates_running_ones_by_the_formula()
    {
        var bn = new BatchNorm2d(2, dtype: DType.Float64);
        var rng = new RandomGenerator(1);
        var x = rng.Normal(new Shape(3, 2, 2, 2), mean: 1, std: 2, dtype: DType.Float64);
        var y = bn.Forward(new Bindings(bn.Parameters(), bn.Parameters().Select(p => (Tensor)p.Data).ToArray(), training: true) { UpdateStatistics = true }, x).ToArray<double>();
        var xs = x.ToArray<double>();
        for (int ch = 0; ch < 2; ch++)
        {
            var values = new List<double>();
            for (int b = 0; b < 3; b++) for (int i = 0; i < 4; i++) values.Add(xs[(b * 2 + ch) * 4 + i]);
            double mean = values.Average(), biased = values.Average(v => (v - mean) * (v - mean)), unbiased = biased * 12 / 11;
            for (int b = 0; b < 3; b++)
                for (int i = 0; i < 4; i++)
                    Assert.Equal((xs[(b * 2 + ch) * 4 + i] - mean) / Math.Sqrt(biased + 1e-5), y[(b * 2 + ch) * 4 + i], 1e-12);
            Assert.Equal(0.9 * 0 + 0.1 * mean, bn.RunningMean.Data.ToArray<double>()[ch], 1e-12);
            Assert.Equal(0.9 * 1 + 0.1 * unbiased, bn.RunningVar.Data.ToArray<double>()[ch], 1e-12);
        }
        Assert.Equal(1L, bn.BatchesTracked.Data.ToArray<long>()[0]);
        // A forward without UpdateStatistics (an HVP, a probe) changes nothing.
        var before = bn.RunningMean.Data.ToArray<double>();
        bn.Forward(Bindings.Constant(bn, training: true), x);
        Assert.Equal(before, bn.RunningMean.Data.ToArray<double>());
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void The_fused_residual_and_relu_equal_the_composed_ones(bool training)
    {
        var bn = new BatchNorm2d(3, dtype: DType.Float64);
        var rng = new RandomGenerator(2);
        bn.Weight.Data = rng.Normal(new Shape(3), dtype: DType.Float64);
        bn.Bias.Data = rng.Normal(new Shape(3), dtype: DType.Float64);
        var x = rng.Normal(new Shape(4, 3, 2, 5), mean: 1, std: 2, dtype: DType.Float64);
        var residual = rng.Normal(x.Shape, dtype: DType.Float64);
        var bindings = Bindings.Constant(bn, training);
        var composed = (bn.Forward(bindings, x) + residual).Relu().Data;
        var fused = bn.Forward(bindings, x, residual, relu: true).Data;
        GradCheck.AssertClose(fused, composed, 1e-14, 1e-14, $"relu(bn(x) + z), training {training}");
        Assert.Contains(0.0, fused.ToArray<double>()); // the clamp is exercised
        GradCheck.AssertClose(bn.Forward(bindings, x, null, relu: true).Data, bn.Forward(bindings, x).Relu().Data, 1e-14, 1e-14, "relu(bn(x))");
    }

    [Fact]
    public void Evaluation_mode_uses_the_running_statistics()
    {
        var bn = new BatchNorm2d(1, dtype: DType.Float64);
        bn.RunningMean.Data = NdArray.FromArray(new[] { 2.0 }, new Shape(1));
        bn.RunningVar.Data = NdArray.FromArray(new[] { 4.0 }, new Shape(1));
        var y = bn.Forward(Bindings.Constant(bn, training: false), NdArray.FromArray(new[] { 0.0, 2, 4, 6 }, new Shape(1, 1, 2, 2))).ToArray<double>();
        double s = Math.Sqrt(4 + 1e-5);
        Assert.Equal(new[] { -2 / s, 0, 2 / s, 4 / s }, y);
        Assert.Equal(new[] { "weight", "bias", "running_mean", "running_var", "num_batches_tracked" }, bn.StateDict().Select(t => t.Name));
    }

    [Fact]
    public void Training_mode_derivatives_go_through_the_batch_statistics_to_second_order()
    {
        var rng = new RandomGenerator(2);
        var bn = new BatchNorm2d(2, dtype: DType.Float64);
        var ps = bn.Parameters();
        // Through the input (which the batch statistics depend on) and the affine parameters.
        GradCheck.Check(a => bn.Forward(new Bindings(ps, [a[1], a[2]], true), a[0]).Tanh(),
            [rng.Normal(new Shape(3, 2, 2, 3), dtype: DType.Float64), rng.Normal(new Shape(2), dtype: DType.Float64), rng.Normal(new Shape(2), dtype: DType.Float64)],
            order: 2, seed: 7, name: "batch_norm (training)");
    }
}
