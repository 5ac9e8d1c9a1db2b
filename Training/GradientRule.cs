using Curvature.Autodiff;
using Curvature.Engine;
using Curvature.Models;

namespace Curvature.Training;

/// <summary>
/// What one step drew: the batch its curvature probes and accuracy use, and how to take its gradient (the loss and
/// the parameter gradients, computed when the trainer asks, with its dropout stream and an observer of the outputs).
/// </summary>
public sealed record GradientDraw(NdArray Inputs, NdArray Targets, Func<Module, string, RandomGenerator?, Action<NdArray>?, (Tensor Value, Tensor[] Gradients)> Gradient)
{
    /// <summary>
    /// The share n_r/N of the step's global batch that <see cref="Inputs"/> is (1 in one process; a rank's shard
    /// under <see cref="Distributed.DataParallelGradient"/>, whose <see cref="Gradient"/> is already the global one).
    /// </summary>
    public double Share { get; init; } = 1;

    /// <summary>One minibatch and its own gradient (<see cref="Trainer.Gradient"/>).</summary>
    public static GradientDraw Minibatch(NdArray inputs, NdArray targets) =>
        new(inputs, targets, (model, loss, noise, outputs) => Trainer.Gradient(model, loss, inputs, targets, noise, outputs));
}

/// <summary>
/// How a step's stochastic gradient is formed from the data: the plain minibatch gradient (the trainer's default),
/// or one of the SDE test's variants (<see cref="Svag"/>, <see cref="GaussianGradient"/>). Every draw comes from
/// the trainer's random stream, so a checkpoint resumes a run exactly.
/// </summary>
public interface IGradientRule
{
    /// <summary>The rule's name as reports print it.</summary>
    string Name { get; }
    /// <summary>Draws one step's batch (or batches) from <paramref name="batches"/> and <paramref name="rng"/>.</summary>
    GradientDraw Draw(IBatchStream batches, RandomGenerator rng);
}

/// <summary>The minibatch gradient ∇L_B: one minibatch from the stream, one reverse pass.</summary>
public sealed class MinibatchGradient : IGradientRule
{
    /// <inheritdoc/>
    public string Name => "sgd";

    /// <inheritdoc/>
    public GradientDraw Draw(IBatchStream batches, RandomGenerator rng)
    {
        var (x, y) = batches.Next(rng);
        return GradientDraw.Minibatch(x, y);
    }
}

/// <summary>
/// SVAG (stochastic variance amplified gradient; Li, Malladi and Arora 2021, "On the validity of modeling SGD with
/// stochastic differential equations", §4): two independent minibatches combined as
/// g = r₁·∇L_B₁ + r₂·∇L_B₂ with r₁,₂ = (1 ± √(2l − 1))/2, taken with the step η/l. Since r₁ + r₂ = 1 and
/// r₁² + r₂² = l, g has SGD's mean and l times its noise covariance, so l steps of η/l move as one SGD step in drift
/// and in noise; as l grows the trajectory converges to the SDE's, and where SGD at l = 1 agrees with l = 2, 4, 8,
/// the SDE describes it. The step's rate η/l is the optimizer's; this rule forms the gradient.
/// </summary>
public sealed class Svag : IGradientRule
{
    /// <summary>The variance amplification l ≥ 1 (l = 1 is SGD: r₁ = 1, r₂ = 0).</summary>
    public int L { get; }
    /// <summary>r₁ = (1 + √(2l − 1))/2.</summary>
    public double R1 { get; }
    /// <summary>r₂ = (1 − √(2l − 1))/2.</summary>
    public double R2 { get; }

    /// <summary>SVAG with amplification <paramref name="l"/>.</summary>
    public Svag(int l)
    {
        if (l < 1) throw new ArgumentOutOfRangeException(nameof(l), l, "SVAG's l must be at least 1.");
        L = l;
        double root = Math.Sqrt(2.0 * l - 1);
        (R1, R2) = ((1 + root) / 2, (1 - root) / 2);
    }

    /// <inheritdoc/>
    public string Name => $"svag l={L}";

    /// <inheritdoc/>
    public GradientDraw Draw(IBatchStream batches, RandomGenerator rng)
    {
        var (x1, y1) = batches.Next(rng);
        var (x2, y2) = batches.Next(rng);
        return new GradientDraw(x1, y1, (model, loss, noise, outputs) =>
        {
            var (v1, g1) = Trainer.Gradient(model, loss, x1, y1, noise, outputs);
            var (v2, g2) = Trainer.Gradient(model, loss, x2, y2, noise);
            // The step's loss is the mean of the two minibatches' (the combination's weights sum to one but r₂ < 0).
            var value = (v1.Data + v2.Data) * 0.5;
            return (value, g1.Select((g, i) => (Tensor)NdArray.LinearCombination([g.Data, g2[i].Data], [R1, R2])).ToArray());
        });
    }
}

/// <summary>
/// Gaussian SGD: the minibatch noise replaced by Gaussian noise of the same covariance Σ/b, in one reverse pass over
/// the whole pool of n examples through random per-example weights wᵢ = 1/n + (ζᵢ − ζ̄)/√(b(n − 1)), ζ ~ N(0, I):
/// g = Σᵢ wᵢ∇ℓᵢ = ḡ + (1/√(b(n − 1)))·Σᵢ (ζᵢ − ζ̄)(∇ℓᵢ − ḡ), whose mean is ḡ and covariance
/// (1/(b(n − 1)))·Σᵢ (∇ℓᵢ − ḡ)(∇ℓᵢ − ḡ)ᵀ = Σ/b, with Σ the sample covariance of the per-example gradients
/// (<see cref="Spectral.GradientNoise"/>'s). ℓᵢ is example i's term of the pool's objective (with training-mode
/// BatchNorm, the statistics are the pool's). Where SGD and Gaussian SGD agree, the noise's shape beyond its
/// covariance does not matter (Li, Malladi and Arora 2021, §5).
/// </summary>
public sealed class GaussianGradient : IGradientRule
{
    private readonly NdArray inputs, targets;

    /// <summary>Gaussian noise of covariance Σ/<paramref name="batch"/> over the pool (<paramref name="inputs"/>, <paramref name="targets"/>).</summary>
    public GaussianGradient(NdArray inputs, NdArray targets, int batch)
    {
        Count = inputs.Shape[0];
        if (Count < 2) throw new ArgumentException($"Gaussian SGD needs a pool of at least 2 examples, got {Count}.", nameof(inputs));
        if (batch < 1 || batch > Count) throw new ArgumentOutOfRangeException(nameof(batch), batch, $"the minibatch size must be 1 to the pool's {Count}.");
        (this.inputs, this.targets, Batch) = (inputs, targets, batch);
    }

    /// <summary>Examples in the pool (n).</summary>
    public int Count { get; }
    /// <summary>The minibatch size b whose noise it imitates.</summary>
    public int Batch { get; }

    /// <inheritdoc/>
    public string Name => $"gaussian b={Batch}";

    /// <summary>The per-example weights of one draw: 1/n + (ζᵢ − ζ̄)/√(b(n − 1)).</summary>
    public NdArray Weights(RandomGenerator rng)
    {
        var z = rng.Normal(new Shape(Count), dtype: DType.Float64).ToArray<double>();
        double mean = z.Average(), scale = 1 / Math.Sqrt((double)Batch * (Count - 1));
        return NdArray.FromArray(z.Select(v => 1.0 / Count + (v - mean) * scale).ToArray(), new Shape(Count));
    }

    /// <inheritdoc/>
    public GradientDraw Draw(IBatchStream batches, RandomGenerator rng)
    {
        var w = Weights(rng);
        return new GradientDraw(inputs, targets, (model, loss, noise, outputs) =>
        {
            var ps = model.Parameters();
            var weights = (Tensor)w.Cast(ps[0].Data.DType).To(ps[0].Data.Device);
            NdArray? perExample = null;
            var (value, grads) = Derivatives.ValueAndGrad(p =>
            {
                var o = model.Forward(new Bindings(ps, p, training: true) { UpdateStatistics = true, Noise = noise }, inputs);
                outputs?.Invoke(o.Data);
                var l = Models.Loss.PerExample(loss, o, targets);
                perExample = l.Data;
                return (l * weights).Sum();
            }, ps.Select(p => (Tensor)p.Data).ToArray());
            // The step's loss is the pool's mean loss; the weighted one is the gradient's objective only.
            return (NdArray.Scalar(perExample!.Sum().ToScalar() / Count, value.Data.DType), grads);
        });
    }
}
