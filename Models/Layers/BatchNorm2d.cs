using Curvature.Autodiff;
using Curvature.Engine;

namespace Curvature.Models.Layers;

/// <summary>
/// Batch normalization over [N, C, H, W] per channel, as PyTorch's nn.BatchNorm2d (eps 1e-5, momentum 0.1).
/// Training mode normalizes with the batch mean and the biased batch variance through the fused
/// <see cref="Autodiff.Primitives.NormalizeScaleShift"/> primitive, so gradients and Hessian-vector products
/// differentiate through the batch statistics exactly. Evaluation mode uses
/// the running statistics. When the bindings ask for it (<see cref="Bindings.UpdateStatistics"/>), a training
/// forward pass updates running = (1 − m)·running + m·batch, with the unbiased batch variance for
/// running_var, and increments num_batches_tracked.
/// </summary>
public sealed class BatchNorm2d : Module
{
    /// <summary>A layer over <paramref name="channels"/> channels (weight 1, bias 0, running mean 0, running variance 1).</summary>
    public BatchNorm2d(int channels, double epsilon = 1e-5, double momentum = 0.1, DType dtype = DType.Float32)
    {
        Epsilon = epsilon;
        Momentum = momentum;
        Weight = AddParameter("weight", NdArray.Ones(new Shape(channels), dtype));
        Bias = AddParameter("bias", NdArray.Zeros(new Shape(channels), dtype));
        RunningMean = AddBuffer("running_mean", NdArray.Zeros(new Shape(channels), dtype));
        RunningVar = AddBuffer("running_var", NdArray.Ones(new Shape(channels), dtype));
        BatchesTracked = AddBuffer("num_batches_tracked", NdArray.FromArray(new long[] { 0 }, Shape.Scalar));
    }

    /// <summary>ε.</summary>
    public double Epsilon { get; }
    /// <summary>The running-statistics momentum m.</summary>
    public double Momentum { get; }
    /// <summary>γ, [C].</summary>
    public Parameter Weight { get; }
    /// <summary>β, [C].</summary>
    public Parameter Bias { get; }
    /// <summary>Running mean, [C].</summary>
    public Buffer RunningMean { get; }
    /// <summary>Running (unbiased) variance, [C].</summary>
    public Buffer RunningVar { get; }
    /// <summary>Batches seen in training mode, int64 scalar.</summary>
    public Buffer BatchesTracked { get; }

    /// <inheritdoc/>
    public override Tensor Forward(Bindings b, Tensor x) => Forward(b, x, null, relu: false);

    private static readonly AsyncLocal<Autodiff.Primitives.IReplicaGroup?> synchronized = new();

    /// <summary>The replica group training-mode BatchNorm synchronizes its statistics over on this flow, or null (per batch).</summary>
    public static Autodiff.Primitives.IReplicaGroup? Synchronization => synchronized.Value;

    /// <summary>
    /// Until disposed, on this async flow, training-mode BatchNorm takes its mean and variance over the whole batch of
    /// the replica <paramref name="group"/> (synchronized BatchNorm, PyTorch's SyncBatchNorm): each replica's shard is
    /// normalized by the global statistics, Σ_r Σx / Σ_r n and Σ_r Σ(x − μ)² / Σ_r n, formed by
    /// <see cref="Autodiff.Primitives.CrossReplicaSum"/>, so gradients and Hessian-vector products are those of the
    /// global batch's loss, and every replica's running statistics take the same global moments.
    /// </summary>
    public static IDisposable SynchronizeOver(Autodiff.Primitives.IReplicaGroup group)
    {
        var previous = synchronized.Value;
        synchronized.Value = group;
        return new Restore(previous);
    }

    private sealed class Restore(Autodiff.Primitives.IReplicaGroup? previous) : IDisposable
    {
        public void Dispose() => synchronized.Value = previous;
    }

    /// <summary>
    /// x̂ with the statistics of the whole group's batch: the unfused composition, every op differentiable to any
    /// order. Exact in float64: two replicas give ResNet-20's one-batch gradient to 1e-15. In float32 they do not:
    /// its first layers' gradients differ from one process's by about 3e-3 (relative; the last layers' by 1e-6;
    /// two replicas of 8, measured). Not this composition's rounding (one replica through it matches the fused
    /// primitive to 2e-6), nor the cross-replica sums' (float64 sums and a float64 composition leave the gap as it
    /// is): each replica's part of the gradient is itself ill-conditioned. Measured in float64, moving one shard's
    /// images by 1e-4 (relative) shifts the two replicas' parts of bn1.bias's gradient by 9 % in opposite
    /// directions while their mean stays put, so each replica's float32 rounding reaches its part amplified, and
    /// the mean inherits it. Identical shards are exact.
    /// </summary>
    private Tensor SynchronizedNormalize(Tensor x, Autodiff.Primitives.IReplicaGroup group, bool updateStatistics)
    {
        int c = Weight.Shape[0];
        long local = x.Shape[0] * (long)x.Shape[2] * x.Shape[3];
        double count = group.Sum(NdArray.Scalar(local, DType.Float64)).ToScalar();
        var sum = new Autodiff.Primitives.CrossReplicaSum(group);
        var mean = sum.Apply(x.Sum([0, 2, 3], keepDims: true)) * (1 / count);
        var centered = x - mean;
        var biased = sum.Apply((centered * centered).Sum([0, 2, 3], keepDims: true)) * (1 / count);
        if (updateStatistics) UpdateStatistics(mean.Data.Reshape(c).Cast(DType.Float64), biased.Data.Reshape(c).Cast(DType.Float64), (long)count);
        return centered / (biased + Epsilon).Sqrt();
    }

    /// <summary>
    /// relu(bn(x) + residual), each part optional: in training mode the affine step, the residual add and the ReLU are
    /// one pass (a ResNet block's end), in evaluation mode the same composed.
    /// </summary>
    public Tensor Forward(Bindings b, Tensor x, Tensor? residual, bool relu)
    {
        int c = Weight.Shape[0];
        if (x.Rank != 4 || x.Shape[1] != c) throw new ArgumentException($"batch_norm: input {x.Shape}; expected [N, {c}, H, W].");
        if (b.Training && Synchronization is { } group)
        {
            var xHat = SynchronizedNormalize(x, group, b.UpdateStatistics);
            var affine = xHat * b[Weight].Reshape(1, c, 1, 1) + b[Bias].Reshape(1, c, 1, 1);
            var z = b.Tap is { } hook ? hook(this, xHat, affine) : affine;
            if (residual is not null) z += residual;
            return relu ? z.Relu() : z;
        }
        if (b.Tap is { } tap)
        {
            // Unfused, for the hook: x̂ by the batch statistics (training) or the running ones, then γ·x̂ + β tapped
            // before the residual and the ReLU (K-FAC's per-channel blocks need x̂ and the gradient at γ·x̂ + β).
            Tensor xHat;
            if (b.Training)
            {
                // The fused primitive with γ = 1, β = 0 is x̂, and reports the moments to the running statistics as above.
                long count = x.Shape[0] * (long)x.Shape[2] * x.Shape[3];
                var normalize = new Autodiff.Primitives.NormalizeScaleShift(1, 2, Epsilon) { OnMoments = b.UpdateStatistics ? (m, v) => UpdateStatistics(m, v, count) : null };
                xHat = normalize.Apply(x, (Tensor)Weight.Data.OnesLike(), (Tensor)Bias.Data.ZerosLike());
            }
            else xHat = (x - (Tensor)RunningMean.Data.Reshape(1, c, 1, 1)) / ((Tensor)RunningVar.Data.Reshape(1, c, 1, 1) + Epsilon).Sqrt();
            var tapped = tap(this, xHat, xHat * b[Weight].Reshape(1, c, 1, 1) + b[Bias].Reshape(1, c, 1, 1));
            if (residual is not null) tapped += residual;
            return relu ? tapped.Relu() : tapped;
        }
        if (b.Training)
        {
            long count = x.Shape[0] * (long)x.Shape[2] * x.Shape[3];
            // The fused normalization primitive: batch statistics per channel, exact derivatives through them, the
            // affine step, residual and ReLU in the same pass; the running statistics take the moments it computed.
            var normalize = new Autodiff.Primitives.NormalizeScaleShift(1, 2, Epsilon, relu) { OnMoments = b.UpdateStatistics ? (m, v) => UpdateStatistics(m, v, count) : null };
            return residual is null ? normalize.Apply(x, b[Weight], b[Bias]) : normalize.Apply(x, b[Weight], b[Bias], residual);
        }
        Tensor mean = RunningMean.Data.Reshape(1, c, 1, 1);
        Tensor variance = RunningVar.Data.Reshape(1, c, 1, 1);
        var y = (x - mean) / (variance + Epsilon).Sqrt() * b[Weight].Reshape(1, c, 1, 1) + b[Bias].Reshape(1, c, 1, 1);
        if (residual is not null) y += residual;
        return relu ? y.Relu() : y;
    }

    /// <summary>running = (1 − m)·running + m·batch, the variance unbiased by count/(count − 1); one more batch tracked.</summary>
    private void UpdateStatistics(NdArray batchMean, NdArray biased, long count)
    {
        double bessel = count / (double)Math.Max(1, count - 1);
        // One kernel on an accelerator (op by op it took nine launches a layer), the counter kept on the device: no host round trip.
        (RunningMean.Data, RunningVar.Data, BatchesTracked.Data) =
            RunningMean.Data.UpdateRunningStatistics(RunningVar.Data, BatchesTracked.Data, batchMean, biased, Momentum, bessel);
    }
}
