using BenchmarkDotNet.Attributes;
using Curvature.Autodiff;
using Curvature.Engine;
using Curvature.Models;

namespace Curvature.Bench;

/// <summary>The MLP of MODELS.md (784-200-200-10, tanh, MSE) in float32: forward, gradient and exact HVP.</summary>
[MemoryDiagnoser]
public class MlpBenchmarks
{
    private Func<Tensor[], Tensor> loss = _ => throw new InvalidOperationException("setup did not run");
    private Tensor[] w = [], v = [];

    /// <summary>Examples in the (full) batch.</summary>
    [Params(5000)]
    public int Batch { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var rng = new RandomGenerator(0);
        var model = Mlp.Create(rng);
        w = model.Parameters().Select(p => (Tensor)p.Data).ToArray();
        v = w.Select(t => (Tensor)rng.Normal(t.Shape)).ToArray();
        loss = Loss.Function(model, "mse", rng.Normal(new Shape(Batch, 784)), rng.Integers(new Shape(Batch), 10));
    }

    [Benchmark(Baseline = true)]
    public double Gradient() => Derivatives.ValueAndGrad(loss, w).Value.ToScalar();

    [Benchmark]
    public double Forward() => loss(w).ToScalar();

    [Benchmark]
    public double Hvp() => Derivatives.Hvp(loss, w, v).Value.ToScalar();
}
