using Curvature.Autodiff;
using Curvature.Engine;
using Curvature.Models;
using Curvature.Spectral;

namespace Curvature.Tests.Spectral;

/// <summary>
/// Per-example losses and the gradient noise, in float64 against references that share no code with them:
/// forward-only finite differences of each ℓᵢ, and the trace of Σ summed direction by direction over the whole
/// parameter basis (forward mode) against the per-example reverse passes; both BatchNorm modes.
/// </summary>
[Collection(ThreadSettings.Name)]
public class GradientNoiseTests
{
    private static (Module Model, NdArray X, NdArray Y) Mlp(int n = 7)
    {
        var model = Curvature.Models.Mlp.Create(new RandomGenerator(1), width: 5, inputs: 4, classes: 3, dtype: DType.Float64);
        var rng = new RandomGenerator(2);
        return (model, rng.Normal(new Shape(n, 4), dtype: DType.Float64), NdArray.FromArray(Enumerable.Range(0, n).Select(i => (long)(i % 3)).ToArray()));
    }

    private static (Module Model, NdArray X, NdArray Y) ResNet(int n = 6)
    {
        var model = new ResNet(new RandomGenerator(3), inputChannels: 1, classes: 3, width: 2, blocksPerStage: 1, dtype: DType.Float64);
        var rng = new RandomGenerator(4);
        // Away from the initialization's exact zeros (β = 0 after a ReLU's zeros puts a residual ReLU exactly on its
        // kink in evaluation mode, where a central difference halves the slope).
        foreach (var p in model.Parameters()) p.Data = p.Data + rng.Normal(p.Shape, std: 0.05, dtype: DType.Float64);
        return (model, rng.Normal(new Shape(n, 1, 6, 6), dtype: DType.Float64), NdArray.FromArray(Enumerable.Range(0, n).Select(i => (long)(i % 3)).ToArray()));
    }

    private static NdArray[] Direction(Module m, ulong seed)
    {
        var rng = new RandomGenerator(seed);
        return m.Parameters().Select(p => rng.Normal(p.Shape, dtype: DType.Float64)).ToArray();
    }

    public static TheoryData<string, string, bool> Cases() => new()
    {
        { "mlp", "ce", false }, { "mlp", "mse", true }, { "resnet", "ce", false }, { "resnet", "ce", true }, { "resnet", "mse", true },
    };

    private static (Module, NdArray, NdArray) Make(string model) => model == "mlp" ? Mlp() : ResNet();

    [Theory]
    [MemberData(nameof(Cases))]
    public void Per_example_losses_average_to_the_loss_and_their_jvp_matches_finite_differences(string kind, string loss, bool training)
    {
        var (model, x, y) = Make(kind);
        var w = model.Parameters().Select(p => (Tensor)p.Data).ToArray();
        var per = Loss.PerExampleFunction(model, loss, x, y, training);
        var l = per(w).Data.ToArray<double>();
        Assert.Equal(Loss.Function(model, loss, x, y, training)(w).ToScalar(), l.Average(), 1e-12);

        var noise = new GradientNoise(model, loss, x, y, training);
        Assert.Equal(training && kind == "resnet", noise.Coupled);
        var v = Direction(model, 5);
        var d = noise.Directional(v);
        double eps = kind == "resnet" ? 1e-8 : 1e-5;          // ReLU kinks: a smaller step for the ResNet
        var plus = per(w.Zip(v, (a, b) => (Tensor)(a.Data + b * eps)).ToArray()).Data.ToArray<double>();
        var minus = per(w.Zip(v, (a, b) => (Tensor)(a.Data - b * eps)).ToArray()).Data.ToArray<double>();
        for (int i = 0; i < d.Length; i++) Assert.Equal((plus[i] - minus[i]) / (2 * eps), d[i], 1e-6 * Math.Max(1, Math.Abs(d[i])));
        // The mean of the gᵢᵀv is ḡᵀv.
        var (_, g) = noise.LossAndGradient();
        Assert.Equal(ParameterVector.Dot(g, v), d.Average(), 1e-10 * Math.Max(1, Math.Abs(d.Average())));
    }

    [Fact]
    public void A_sequence_models_per_example_losses_are_its_sequences_means_and_average_to_the_loss()
    {
        var gpt = new Gpt(new GptConfig(Vocabulary: 5, Context: 4, Layers: 1, Heads: 1, Width: 4), new RandomGenerator(6), DType.Float64);
        var ids = NdArray.FromArray(new long[] { 0, 1, 2, 3, 4, 3, 2, 1, 1, 1, 2, 2 }, new Shape(3, 4));
        var next = NdArray.FromArray(new long[] { 1, 2, 3, 4, 3, 2, 1, 0, 1, 2, 2, 3 }, new Shape(3, 4));
        var w = gpt.Parameters().Select(p => (Tensor)p.Data).ToArray();
        var per = Loss.PerExampleFunction(gpt, "ce", ids, next)(w).Data.ToArray<double>();
        Assert.Equal(3, per.Length);
        Assert.Equal(Loss.Function(gpt, "ce", ids, next)(w).ToScalar(), per.Average(), 1e-12);
        Assert.Equal(Loss.Function(gpt, "ce", ids.Rows(1, 1), next.Rows(1, 1))(w).ToScalar(), per[1], 1e-12);
        var noise = new GradientNoise(gpt, "ce", ids, next, training: false);
        Assert.False(noise.Coupled);
        Assert.True(noise.TraceExact() > 0);
    }

    [Theory]
    [InlineData("mlp", false)]
    [InlineData("resnet", true)]
    [InlineData("resnet", false)]
    public void The_exact_trace_is_the_sum_of_the_variances_along_every_coordinate(string kind, bool training)
    {
        var (model, x, y) = Make(kind);
        var noise = new GradientNoise(model, "ce", x, y, training);
        var shapes = model.Parameters().Select(p => p.Shape).ToArray();
        double byBasis = 0;
        for (int a = 0; a < shapes.Length; a++)
            for (int j = 0; j < shapes[a].Size; j++)
            {
                var e = shapes.Select((s, b) => b == a ? OneHot(s, j) : NdArray.Zeros(s, DType.Float64)).ToArray();
                byBasis += noise.VarianceAlong(e);
            }
        double exact = noise.TraceExact();
        Assert.True(exact > 0);
        Assert.Equal(byBasis, exact, 1e-9 * byBasis);
        // Hutchinson's estimate agrees within its own standard error (a seeded draw).
        var h = noise.TraceHutchinson(200, new RandomGenerator(9));
        Assert.True(Math.Abs(h.Value - exact) <= 4 * h.StandardError, $"Hutchinson {h.Value} ± {h.StandardError} vs exact {exact}");
    }

    [Theory]
    [InlineData("ce")]
    [InlineData("mse")]
    public void The_mlps_one_pass_trace_equals_the_sum_over_its_per_example_gradients(string loss)
    {
        // TraceExact takes the MLP's per-example squared norms from one reverse pass (‖δᵢ‖²·‖ãᵢ‖² per layer);
        // the reference is every example's own gradient.
        var (model, x, y) = Mlp();
        var noise = new GradientNoise(model, loss, x, y, training: false);
        var (_, mean) = noise.LossAndGradient();
        double reference = 0;
        for (int i = 0; i < noise.Count; i++)
            reference += noise.ExampleGradient(i).Zip(mean, (g, m) => (g - m).Dot(g - m)).Sum();
        reference /= noise.Count - 1;
        Assert.True(reference > 0);
        Assert.Equal(reference, noise.TraceExact(mean), 1e-10 * reference);
    }

    public static TheoryData<string, bool, string, int> ChunkCases() => new()
    {
        // The MLP's outer products on the host (float64 and float32), on an accelerator (broadcast products), the
        // ResNet's reverse pass per example (evaluation mode) and per cotangent eᵢ (training mode); chunks of 1,
        // of a size that does not divide the batch, and of more than the batch.
        { "mlp", false, "cpu", 3 }, { "mlp32", false, "cpu", 1 }, { "mlp", false, "ilgpu-cpu", 4 }, { "resnet", false, "cpu", 4 }, { "resnet", true, "cpu", 100 }, { "mlp", false, "cpu", 0 },
    };

    [Theory]
    [MemberData(nameof(ChunkCases))]
    public void Chunked_per_example_gradients_are_the_rows_of_every_examples_own_gradient(string kind, bool training, string device, int chunk)
    {
        var (model, x, y) = Make(kind == "mlp32" ? "mlp" : kind);
        if (kind == "mlp32")
        {
            foreach (var p in model.Parameters()) p.Data = p.Data.Cast(DType.Float32);
            x = x.Cast(DType.Float32);
        }
        if (device == "ilgpu-cpu") { model.To(DeviceCatalog.IlgpuCpu); x = x.To(DeviceCatalog.IlgpuCpu); y = y.To(DeviceCatalog.IlgpuCpu); }
        var noise = new GradientNoise(model, "ce", x, y, training);
        var seen = new List<int>();
        foreach (var (start, rows) in noise.ExampleGradients(chunk))
        {
            Assert.Equal(model.Parameters().Sum(p => p.Data.Size), rows.Shape[1]);
            // Chunk 0: as many as fit in 4 MiB, here every example of the small model.
            Assert.Equal(Math.Min(chunk == 0 ? noise.Count : chunk, noise.Count - start), rows.Shape[0]);
            var got = rows.ToDoubleArray();
            for (int r = 0; r < rows.Shape[0]; r++)
            {
                var want = Vectors.Flatten(noise.ExampleGradient(start + r)).ToDoubleArray();
                double scale = want.Max(Math.Abs);
                for (int j = 0; j < want.Length; j++)
                    Assert.True(Math.Abs(got[r * want.Length + j] - want[j]) <= (kind == "mlp32" ? 1e-5 : 1e-12) * scale, $"example {start + r}, coordinate {j}: {got[r * want.Length + j]} vs {want[j]}");
                seen.Add(start + r);
            }
        }
        Assert.Equal(Enumerable.Range(0, noise.Count), seen);
    }

    private static NdArray OneHot(Shape s, long j)
    {
        var a = new double[s.Size];
        a[j] = 1;
        return NdArray.FromArray(a, s);
    }

    [Theory]
    [InlineData("mlp", false)]
    [InlineData("resnet", true)]
    public void Batch_sharpness_over_the_whole_batch_is_the_gradient_sharpness(string kind, bool training)
    {
        var (model, x, y) = Make(kind);
        var noise = new GradientNoise(model, "ce", x, y, training);
        double gs = noise.GradientSharpness();
        var whole = noise.BatchSharpness(noise.Count, 1, new RandomGenerator(1));
        Assert.Equal(gs, whole.Value, 1e-9 * Math.Max(1, Math.Abs(gs)));
        // Minibatches of one example: each ratio is that example's own g Hg / g g; the estimate carries its spread.
        var small = noise.BatchSharpness(2, 12, new RandomGenerator(2));
        Assert.Equal(12, small.Probes);
        Assert.True(small.StandardError > 0 && double.IsFinite(small.Value));
        Assert.Throws<ArgumentOutOfRangeException>(() => noise.BatchSharpness(noise.Count + 1, 1, new RandomGenerator(1)));
    }

    [Fact]
    public void The_ratio_of_means_weighs_each_minibatch_by_its_squared_gradient_norm()
    {
        // The same minibatches, read both ways: recomputed here from each minibatch's own gᵀHg and ‖g‖², the ratio of
        // means is Σ gᵀHg / Σ ‖g‖² and the mean of ratios the plain average; they differ when the norms differ.
        var (model, x, y) = Make("mlp");
        var noise = new GradientNoise(model, "ce", x, y, training: false);
        var both = noise.BatchSharpnessBoth(3, 8, new RandomGenerator(5));
        var rng = new RandomGenerator(5);
        var w = model.Parameters().Select(p => (Tensor)p.Data).ToArray();
        double sumC = 0, sumN = 0, sumQ = 0;
        for (int k = 0; k < 8; k++)
        {
            var pick = Curvature.Models.Data.Dataset.Permutation(noise.Count, rng)[..3];
            var idx = NdArray.FromArray(pick, new Shape(3));
            var f = Loss.Function(model, "ce", x.Reshape(x.Shape[0], -1).Gather(idx).Reshape([3, .. x.Shape.Skip(1)]), y.Reshape(y.Shape[0], 1).Gather(idx).Reshape(3));
            var g = Derivatives.Grad(f, w);
            var hg = Derivatives.Hvp(f, w, g).Product;
            double c = g.Zip(hg).Sum(t => t.First.Data.Dot(t.Second.Data)), n = g.Sum(t => t.Data.Dot(t.Data));
            sumC += c; sumN += n; sumQ += c / n;
        }
        Assert.Equal(sumQ / 8, both.MeanOfRatios.Value, 1e-9 * Math.Abs(sumQ / 8));
        Assert.Equal(sumC / sumN, both.RatioOfMeans.Value, 1e-9 * Math.Abs(sumC / sumN));
        Assert.True(both.RatioOfMeans.StandardError > 0 && double.IsFinite(both.RatioOfMeans.StandardError));
        Assert.Equal(both.MeanOfRatios.Value, noise.BatchSharpness(3, 8, new RandomGenerator(5)).Value);
    }
}
