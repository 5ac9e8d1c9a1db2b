using Curvature.Autodiff;
using Curvature.Engine;
using Curvature.Models;
using Curvature.Optimizers;
using Curvature.Spectral;

namespace Curvature.Tests.Engine;

/// <summary>
/// What crosses between host and accelerator. A copy from pageable host memory waits for the whole stream, so on a
/// GPU every read the code did not mean to make stalls the device: a training step may read the loss it logs and
/// nothing else, and an HVP reads nothing. These run on ILGPU's CPU accelerator, which takes the same code paths.
/// </summary>
[Collection(Curvature.Tests.CpuAccelerator.Name)]
public class HostTransferTests
{
    private static readonly AcceleratorDevice Device = DeviceCatalog.IlgpuCpu;

    public static TheoryData<string, string> ModelsAndOptimizers()
    {
        var d = new TheoryData<string, string>();
        foreach (var model in new[] { "mlp", "resnet", "gpt" })
            foreach (var optimizer in new[] { "sgd", "momentum", "adamw" })
                d.Add(model, optimizer);
        return d;
    }

    /// <summary>A small model of each family on the device, with a batch already there.</summary>
    private static (Module Model, NdArray X, NdArray Y) Build(string name)
    {
        var rng = new RandomGenerator(3);
        return name switch
        {
            "mlp" => (Mlp.Create(new RandomGenerator(1), width: 8, inputs: 12, classes: 4).To(Device), rng.Normal(new Shape(6, 12)).To(Device), rng.Integers(new Shape(6), 4).To(Device)),
            "resnet" => (new ResNet(new RandomGenerator(1), inputChannels: 2, classes: 3, width: 2, blocksPerStage: 1).To(Device),
                rng.Normal(new Shape(3, 2, 8, 8)).To(Device), rng.Integers(new Shape(3), 3).To(Device)),
            _ => (new Gpt(new GptConfig(Vocabulary: 7, Context: 5, Layers: 1, Heads: 2, Width: 4), new RandomGenerator(2)).To(Device),
                rng.Integers(new Shape(2, 4), 7).To(Device), rng.Integers(new Shape(2, 4), 7).To(Device)),
        };
    }

    private static void TrainStep(Module model, IOptimizer optimizer, int step, NdArray x, NdArray y)
    {
        var ps = model.Parameters();
        var (value, grads) = Derivatives.ValueAndGrad(
            p => Loss.Of("ce", model.Forward(new Bindings(ps, p, training: true) { UpdateStatistics = true }, x), y), ps.Select(p => (Tensor)p.Data).ToArray());
        optimizer.Step(new StepContext { Step = step, Loss = value.ToScalar(), Parameters = ps, Gradients = grads.Select(g => g.Data).ToArray() });
    }

    [Theory, MemberData(nameof(ModelsAndOptimizers))]
    public void A_training_step_reads_its_loss_and_nothing_else(string modelName, string optimizerName)
    {
        var (model, x, y) = Build(modelName);
        IOptimizer optimizer = optimizerName switch
        {
            "sgd" => new GradientDescent(0.01, weightDecay: 1e-4),
            "momentum" => new Momentum(0.01, 0.9),
            _ => new Adam(1e-3, weightDecay: 0.01, decoupled: true),
        };
        // The first step may write what a model keeps on the device once (the GPT's position indices).
        TrainStep(model, optimizer, 0, x, y);
        for (int step = 1; step <= 2; step++)
        {
            using var transfers = HostTransfers.Count();
            TrainStep(model, optimizer, step, x, y);
            Assert.True(transfers.Reads == 1 && transfers.Writes == 0, $"{modelName} with {optimizerName}, step {step}: {transfers}; expected the loss alone.");
            Assert.Equal(sizeof(double), transfers.BytesRead); // ToScalar casts on the device and reads one float64
        }
    }

    [Theory]
    [InlineData("mlp")]
    [InlineData("resnet")]
    [InlineData("gpt")]
    public void A_hessian_vector_product_makes_no_host_transfer(string modelName)
    {
        var (model, x, y) = Build(modelName);
        var f = Loss.Function(model, "ce", x, y, training: true);
        var w = model.Parameters().Select(p => (Tensor)p.Data).ToArray();
        var v = w.Select(p => (Tensor)new RandomGenerator(1).Normal(p.Shape, dtype: p.DType, device: Device)).ToArray();
        Derivatives.Hvp(f, w, v);
        using var transfers = HostTransfers.Count();
        var product = Derivatives.Hvp(f, w, v).Product;
        Assert.True(transfers.Reads == 0 && transfers.Writes == 0, $"{modelName}: {transfers}");
        Assert.All(product, p => Assert.Equal(Device, p.Data.Device));
    }

    [Fact]
    public void Products_against_a_whole_basis_are_read_at_once_with_the_values_of_single_dot_products()
    {
        var rng = new RandomGenerator(5);
        foreach (var t in new[] { DType.Float32, DType.Float64 })
        {
            var basis = Enumerable.Range(0, 5).Select(_ => rng.Normal(new Shape(3000), dtype: t, device: Device)).ToArray();
            var w = rng.Normal(new Shape(3000), dtype: t, device: Device);
            var one = basis.Select(q => q.Dot(w)).ToArray();
            using var transfers = HostTransfers.Count();
            Assert.Equal(one, NdArray.Dots(basis, w));
            Assert.Equal(1, transfers.Reads);
        }
        var e = Assert.Throws<ArgumentException>(() => NdArray.Dots([NdArray.Zeros(new Shape(3))], NdArray.Zeros(new Shape(4))));
        Assert.Equal("dots: shapes [3] and [4]; expected equal shapes.", e.Message);
    }

    [Fact]
    public void A_lanczos_iteration_reads_four_scalars_whatever_the_size_of_its_basis()
    {
        // α, the coefficients of each of the two Gram-Schmidt passes against the whole basis, and β: four reads,
        // where one read per basis vector made the count grow with the square of the iterations.
        var (model, x, y) = Build("mlp");
        var op = new HessianOperator(Loss.Function(model, "ce", x, y, training: true), model.Parameters().Select(p => p.Data).ToArray());
        var start = new RandomGenerator(4).Normal(new Shape((int)op.Dimension), device: Device);
        using var transfers = HostTransfers.Count();
        var result = Lanczos.Run(op, 12, start: start);
        Assert.Equal(12, result.Iterations);
        Assert.True(transfers.Reads <= 4 * 12 + 1, $"{transfers} for 12 iterations");
    }

    [Fact]
    public void Copies_are_counted_with_their_bytes_in_every_open_scope_on_the_thread()
    {
        var host = NdArray.FromArray(new double[] { 1, 2, 3, 4, 5 }, new Shape(5));
        using var outer = HostTransfers.Count();
        var onDevice = host.To(Device);
        using (var inner = HostTransfers.Count())
        {
            Assert.Equal([1, 2, 3, 4, 5], onDevice.ToArray<double>());
            Assert.Equal(15, onDevice.Dot(NdArray.FromArray(new double[] { 1, 1, 1, 1, 1 }, new Shape(5), Device)));
            Assert.Equal((1, 1), (inner.Writes, inner.Reads - 1));
            Assert.Equal(40, inner.BytesWritten);
            Assert.True(inner.BytesRead >= 48, inner.ToString()); // the five elements, then at least one partial sum
        }
        Assert.Equal(2, outer.Writes);
        Assert.Equal(80, outer.BytesWritten);
        Assert.Equal(2, outer.Reads);

        // The CPU device copies nothing; a copy made on another thread belongs to that thread's scopes.
        _ = host.Dot(host) + host.To(CpuDevice.Instance).ToArray<double>()[0];
        var other = new Thread(() => onDevice.ToArray<double>());
        other.Start();
        other.Join();
        Assert.Equal((2, 2), (outer.Writes, outer.Reads));
    }

    [Fact]
    public void A_scope_must_be_closed_innermost_first()
    {
        using var outer = HostTransfers.Count();
        var inner = HostTransfers.Count();
        var e = Assert.Throws<InvalidOperationException>(outer.Dispose);
        Assert.Contains("innermost scope first", e.Message);
        inner.Dispose();
    }
}
