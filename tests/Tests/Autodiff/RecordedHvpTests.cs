using Curvature.Autodiff;
using Curvature.Engine;
using Curvature.Kernels;
using Curvature.Models;
using Curvature.Spectral;
using FsCheck;
using FsCheck.Fluent;

namespace Curvature.Tests.Autodiff;

/// <summary>
/// A recorded Hessian-vector product (the tangent graph swept transposed) gives the forward-over-reverse product
/// for every direction, on every model family's ops (tanh and ReLU MLPs, a ResNet in training mode, a GPT), and on
/// a single parameter block; and a sweep does less arithmetic than the product it replaces.
/// </summary>
[Collection(ThreadSettings.Name)]
public class RecordedHvpTests
{
    private static readonly string[] Models = ["mlp-tanh-ce", "mlp-relu-mse", "resnet-train", "gpt"];

    private static (Func<Tensor[], Tensor> F, NdArray[] W) Make(string kind, RandomGenerator rng)
    {
        switch (kind)
        {
            case "mlp-tanh-ce":
            case "mlp-relu-mse":
            {
                var mlp = Mlp.Create(rng, 5, kind.Contains("tanh") ? "tanh" : "relu", 6, 3, DType.Float64);
                var x = rng.Normal(new Shape(7, 6), dtype: DType.Float64);
                var y = rng.Integers(new Shape(7), 3);
                return (Loss.Function(mlp, kind.EndsWith("ce") ? "ce" : "mse", x, y), mlp.Parameters().Select(p => p.Data * 2.0).ToArray());
            }
            case "resnet-train":
            {
                var net = new ResNet(rng, inputChannels: 2, classes: 3, width: 2, blocksPerStage: 1, dtype: DType.Float64);
                var x = rng.Normal(new Shape(4, 2, 6, 6), dtype: DType.Float64);
                var y = rng.Integers(new Shape(4), 3);
                return (Loss.Function(net, "ce", x, y, training: true), net.Parameters().Select(p => p.Data).ToArray());
            }
            default:
            {
                var gpt = new Gpt(new GptConfig(Vocabulary: 7, Context: 5, Layers: 1, Heads: 2, Width: 4), rng, DType.Float64);
                foreach (var p in gpt.Parameters()) p.Data = rng.Normal(p.Shape, 0, 0.5, DType.Float64);
                var ids = rng.Integers(new Shape(2, 5), 7);
                var next = rng.Integers(new Shape(2, 5), 7);
                return (Loss.Function(gpt, "ce", ids, next, training: true), gpt.Parameters().Select(p => p.Data).ToArray());
            }
        }
    }

    private static Tensor[] T(NdArray[] a) => a.Select(x => (Tensor)x).ToArray();

    private static void AssertSame(Tensor[] actual, Tensor[] expected, string what)
    {
        var a = GradCheck.Flatten(actual).Data;
        var e = GradCheck.Flatten(expected).Data;
        double scale = Math.Sqrt(e.Dot(e));
        double error = Math.Sqrt((a - e).Dot(a - e));
        Assert.True(error <= 1e-11 * Math.Max(scale, 1e-3), $"{what}: ‖recorded − direct‖ = {error:E3} against ‖Hu‖ = {scale:E3}");
    }

    [Fact]
    public void Every_sweep_of_a_recorded_product_is_the_direct_product_of_its_direction() =>
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(8),
            Prop.ForAll(Gen.Choose(0, int.MaxValue).ToArbitrary(), Gen.Elements(Models).ToArbitrary(), (seed, kind) =>
            {
                var rng = new RandomGenerator((ulong)seed);
                var (f, w) = Make(kind, rng);
                var v = GradCheck.RandomLike(rng, w);
                var recorded = Derivatives.RecordHvp(f, T(w), T(v));
                AssertSame(recorded.First, Derivatives.Hvp(f, T(w), T(v)).Product, $"{kind}, the recording direction");
                for (int i = 0; i < 3; i++)
                {
                    var u = GradCheck.RandomLike(rng, w);
                    AssertSame(recorded.Apply(T(u)), Derivatives.Hvp(f, T(w), T(u)).Product, $"{kind}, sweep {i}");
                }
            }));

    [Fact]
    public void A_recorded_block_operator_gives_the_block_products_and_sweeps_with_less_arithmetic()
    {
        var rng = new RandomGenerator(11);
        var (f, w) = Make("resnet-train", rng);
        var hessian = new HessianOperator(f, w);
        int last = w.Length - 1; // the head's bias: its tangents start at the last layer
        var plain = hessian.Block([last]);
        var recorded = plain.Recorded();
        long plainFlops = 0, sweepFlops = 0;
        for (int i = 0; i < 3; i++)
        {
            var u = rng.Normal(new Shape((int)plain.Dimension), dtype: DType.Float64);
            var direct = new FlopCounter();
            NdArray expected;
            using (FlopCounter.Count(direct)) expected = plain.Apply(u);
            var swept = new FlopCounter();
            NdArray actual;
            using (FlopCounter.Count(swept)) actual = recorded.Apply(u);
            AssertSame([actual], [expected], $"block product {i}");
            if (i > 0) { plainFlops += direct.Flops; sweepFlops += swept.Flops; }
        }
        // The sweeps skip the forward pass through the whole network and the primal backward pass to the head.
        Assert.True(sweepFlops * 20 < plainFlops, $"a sweep did {sweepFlops} FLOPs against {plainFlops} for the direct product");
    }

    [Fact]
    public void A_block_of_the_hessian_that_the_direction_does_not_reach_sweeps_to_zero()
    {
        // f(a, b) = Σ a³ + Σ b: H = diag(6a) ⊕ 0, so b's product does not depend on the direction at all.
        Tensor F(Tensor[] p) => (p[0] * p[0] * p[0]).Sum() + p[1].Sum();
        var a = NdArray.FromArray(new[] { 1.0, -2.0, 0.5 });
        var b = NdArray.FromArray(new[] { 3.0, 4.0 });
        var recorded = Derivatives.RecordHvp(F, [a, b], [NdArray.FromArray(new[] { 1.0, 1.0, 1.0 }), NdArray.FromArray(new[] { 1.0, 1.0 })]);
        var hu = recorded.Apply([NdArray.FromArray(new[] { 2.0, 1.0, -1.0 }), NdArray.FromArray(new[] { 5.0, 7.0 })]);
        Assert.Equal(new[] { 12.0, -12.0, -3.0 }, hu[0].ToArray<double>());
        Assert.Equal(new[] { 0.0, 0.0 }, hu[1].ToArray<double>());
        var wrong = Assert.Throws<ArgumentException>(() => recorded.Apply([NdArray.FromArray(new[] { 1.0, 2.0 }), b]));
        Assert.Contains("direction 0", wrong.Message);
    }
}
