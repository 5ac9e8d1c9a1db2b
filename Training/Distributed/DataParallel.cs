using System.Security.Cryptography;
using System.Text;
using Curvature.Autodiff;
using Curvature.Engine;
using Curvature.Models;
using Curvature.Spectral;

namespace Curvature.Training.Distributed;

/// <summary>
/// Data parallelism over a communicator: each rank takes a contiguous shard of every global batch, and the
/// global batch's mean (of a loss, a gradient, a Hessian-vector product) is the share-weighted sum of the shards'
/// means, Σ_r (n_r/N)·mean_r, formed by one all-reduce of a flat buffer. With equal shards the weights are 1/size
/// and the result equals the single-process one up to float rounding; BatchNorm in training mode normalizes each
/// shard by its own statistics (as PyTorch's DistributedDataParallel does without SyncBatchNorm), so there the
/// distributed function is the mean of the shards' losses, not the global batch's.
/// </summary>
public static class DataParallel
{
    /// <summary>Rank <paramref name="rank"/>'s contiguous share of <paramref name="count"/> items: the first count mod size ranks take one more.</summary>
    public static (int Start, int Count) Shard(int count, int rank, int size)
    {
        if (size < 1 || rank < 0 || rank >= size) throw new ArgumentOutOfRangeException(nameof(rank), rank, $"rank must be 0 to {size - 1}.");
        if (count < size)
            throw new TrainingException($"a batch of {count} example{(count == 1 ? "" : "s")} cannot be split over {size} ranks; give at least one example per rank.");
        int q = count / size, extra = count % size;
        return (rank * q + Math.Min(rank, extra), q + (rank < extra ? 1 : 0));
    }

    /// <summary>This rank's rows of a batch (axis 0) and its share n_r/N of it.</summary>
    public static (NdArray Rows, double Share) ShardRows(NdArray batch, ICommunicator comm)
    {
        if (comm.Size == 1) return (batch, 1);
        int n = batch.Shape[0];
        var (start, count) = Shard(n, comm.Rank, comm.Size);
        return (batch.Slice(0, start, count), count / (double)n);
    }

    /// <summary>
    /// Σ_r share_r·a_r for each array, over the ranks, in one all-reduce of a flat host buffer (float32 when every
    /// array is float32, else float64); the results keep each array's shape, dtype and device. CPU arrays are read
    /// in place and the buffer is pooled, so a step stages its gradient with one pass in and one out.
    /// </summary>
    public static NdArray[] WeightedSum(ICommunicator comm, IReadOnlyList<NdArray> arrays, double share)
    {
        if (comm.Size == 1 && share == 1) return arrays.ToArray();
        long total = arrays.Sum(a => a.Size);
        if (total > int.MaxValue) throw new NotSupportedException($"an all-reduce of {total:N0} elements; at most {int.MaxValue:N0} are staged at once.");
        return arrays.All(a => a.DType == DType.Float32)
            ? Reduce<float>(comm, arrays, (int)total, (flat, a) => Scale(a, (float)share, flat), comm.AllReduceSum)
            : Reduce<double>(comm, arrays, (int)total, (flat, a) => Scale(a, share, flat), comm.AllReduceSum);
    }

    private delegate void Collective<T>(Span<T> values);

    private static NdArray[] Reduce<T>(ICommunicator comm, IReadOnlyList<NdArray> arrays, int total, Action<Span<T>, NdArray> load, Collective<T> collective) where T : unmanaged
    {
        var pooled = System.Buffers.ArrayPool<T>.Shared.Rent(total);
        try
        {
            var flat = pooled.AsSpan(0, total);
            int at = 0;
            foreach (var a in arrays)
            {
                load(flat.Slice(at, (int)a.Size), a);
                at += (int)a.Size;
            }
            collective(flat);
            var result = new NdArray[arrays.Count];
            at = 0;
            for (int k = 0; k < arrays.Count; k++)
            {
                var a = arrays[k];
                var part = flat.Slice(at, (int)a.Size).ToArray();
                at += part.Length;
                var host = CpuDevice.Instance.FromHost(part, a.Shape);
                result[k] = a.DType == DTypeExtensions.Of<T>() ? host.To(a.Device) : host.Cast(a.DType).To(a.Device);
            }
            return result;
        }
        finally { System.Buffers.ArrayPool<T>.Shared.Return(pooled); }
    }

    private static void Scale(NdArray a, float share, Span<float> into)
    {
        if (a.Storage is CpuStorage)
        {
            System.Numerics.Tensors.TensorPrimitives.Multiply(a.Span<float>(), share, into);
            GC.KeepAlive(a);
        }
        else System.Numerics.Tensors.TensorPrimitives.Multiply(a.ToArray<float>(), share, into);
    }

    private static void Scale(NdArray a, double share, Span<double> into)
    {
        if (a.Storage is CpuStorage && a.DType == DType.Float64)
        {
            System.Numerics.Tensors.TensorPrimitives.Multiply(a.Span<double>(), share, into);
            GC.KeepAlive(a);
        }
        else System.Numerics.Tensors.TensorPrimitives.Multiply(a.ToDoubleArray(), share, into);
    }

    /// <summary>Σ_r share_r·value_r over the ranks.</summary>
    public static double WeightedSum(ICommunicator comm, double value, double share)
    {
        if (comm.Size == 1) return value * share;
        double[] v = [share * value];
        comm.AllReduceSum(v);
        return v[0];
    }

    /// <summary>True on every rank when any rank's <paramref name="flag"/> is true.</summary>
    public static bool Any(ICommunicator comm, bool flag)
    {
        if (comm.Size == 1) return flag;
        long[] v = [flag ? 1 : 0];
        comm.AllReduceMax(v);
        return v[0] != 0;
    }

    /// <summary>Rank <paramref name="root"/>'s text on every rank.</summary>
    public static string Broadcast(ICommunicator comm, string text, int root = 0)
    {
        if (comm.Size == 1) return text;
        var bytes = comm.Rank == root ? Encoding.UTF8.GetBytes(text) : [];
        var length = new byte[sizeof(long)];
        if (comm.Rank == root) BitConverter.TryWriteBytes(length, (long)bytes.Length);
        comm.Broadcast(length, root);
        if (comm.Rank != root) bytes = new byte[BitConverter.ToInt64(length)];
        comm.Broadcast(bytes, root);
        return Encoding.UTF8.GetString(bytes);
    }

    /// <summary>
    /// Checks that every rank runs with the same settings (rank 0's are broadcast and compared key by key); on a
    /// disagreement every rank throws the same message, naming the ranks that differ and the first one's settings
    /// against rank 0's.
    /// </summary>
    public static void RequireAgreement(ICommunicator comm, IReadOnlyDictionary<string, string> settings)
    {
        if (comm.Size == 1) return;
        static string Line(KeyValuePair<string, string> kv) => kv.Key + "=" + kv.Value.Replace("\n", " ");
        var mine = settings.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(Line).ToList();
        var theirs = Broadcast(comm, string.Join('\n', mine)).Split('\n');
        var ours = theirs.ToDictionary(t => t.Split('=')[0], t => t);
        var differs = mine.Except(theirs).Select(t => $"{t} (rank 0: {ours.GetValueOrDefault(t.Split('=')[0])?.Split('=', 2)[1] ?? "not set"})")
            .Concat(theirs.Except(mine).Where(t => !settings.ContainsKey(t.Split('=')[0])).Select(t => $"{t.Split('=')[0]} not set (rank 0: {t.Split('=', 2)[1]})")).ToList();
        var flags = comm.AllGather(differs.Count);
        var ranks = flags.Select((f, r) => (f, r)).Where(t => t.f > 0).Select(t => t.r).ToList();
        if (ranks.Count == 0) return;
        // The first differing rank tells every rank what differs, so whichever rank's message reaches the user says it.
        string what = Broadcast(comm, string.Join(", ", differs.Take(5)), root: ranks[0]);
        throw new TrainingException($"the ranks disagree on the run's configuration: rank{(ranks.Count == 1 ? "" : "s")} {string.Join(", ", ranks)} differ{(ranks.Count == 1 ? "s" : "")} from rank 0 "
                                    + $"(rank {ranks[0]}: {what}); start every rank with the same command and files.");
    }

    /// <summary>A 64-bit fingerprint of the parameters' bytes (in order), to check that ranks still hold the same weights.</summary>
    public static long Fingerprint(Module model)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var (name, p) in model.NamedParameters())
        {
            sha.AppendData(Encoding.UTF8.GetBytes(name));
            sha.AppendData(p.Data.DType == DType.Float32 ? System.Runtime.InteropServices.MemoryMarshal.AsBytes(p.Data.ToArray<float>().AsSpan())
                                                           : System.Runtime.InteropServices.MemoryMarshal.AsBytes(p.Data.ToDoubleArray().AsSpan()));
        }
        return BitConverter.ToInt64(sha.GetHashAndReset());
    }

    /// <summary>Throws, naming the ranks, when the ranks' weights are no longer the same bits (they must stay replicated).</summary>
    public static void RequireReplicated(ICommunicator comm, Module model, int step)
    {
        if (comm.Size == 1) return;
        var all = comm.AllGather(Fingerprint(model));
        var off = all.Select((h, r) => (h, r)).Where(t => t.h != all[0]).Select(t => t.r).ToList();
        if (off.Count > 0)
            throw new TrainingException($"after step {step} the weights of rank{(off.Count == 1 ? "" : "s")} {string.Join(", ", off)} differ from rank 0's; the ranks no longer train one model (a nondeterministic reduction or a rank-local update).");
    }

    /// <summary>
    /// Until disposed, training-mode BatchNorm on this flow normalizes by the statistics of the whole batch over the
    /// ranks, this rank weighing <paramref name="share"/> (<see cref="Models.Layers.BatchNorm2d.SynchronizeOver"/>);
    /// null (nothing to undo) when <paramref name="synchronize"/> is false or there is one rank.
    /// </summary>
    public static IDisposable? SynchronizeBatchNorm(ICommunicator comm, double share, bool synchronize) =>
        synchronize && comm.Size > 1 ? Models.Layers.BatchNorm2d.SynchronizeOver(new ReplicaGroup(comm, share)) : null;

    /// <summary>
    /// Replaces the floating-point buffers (BatchNorm's running statistics) by their share-weighted mean over the
    /// ranks, so every rank evaluates and saves the same model (PyTorch's DDP broadcasts rank 0's instead).
    /// </summary>
    public static void AverageBuffers(ICommunicator comm, Module model, double share)
    {
        if (comm.Size == 1) return;
        var buffers = model.NamedBuffers().Select(b => b.Buffer).Where(b => b.Data.DType is DType.Float32 or DType.Float64).ToList();
        if (buffers.Count == 0) return;
        var mean = WeightedSum(comm, buffers.Select(b => b.Data).ToList(), share);
        for (int i = 0; i < buffers.Count; i++) buffers[i].Data = mean[i];
    }
}

/// <summary>
/// A rule's gradient over the global batch, data-parallel: the wrapped rule draws through a view of the stream
/// that hands this rank its shard of each global batch (every rank draws the same global batch from the same
/// random stream), and the shard's loss and gradient are combined over the ranks as Σ_r (n_r/N)·(ℓ_r, ∇ℓ_r) in one
/// all-reduce of a flat buffer. A rule that draws no batch from the stream (Gaussian SGD's fixed pool) computes
/// the whole on every rank, and the mean of those equal parts is the same gradient.
/// </summary>
/// <param name="inner">The rule whose gradient is spread.</param>
/// <param name="comm">The ranks.</param>
/// <param name="syncBatchNorm">Training-mode BatchNorm normalizes by the global batch's statistics (<see cref="Models.Layers.BatchNorm2d.SynchronizeOver"/>) instead of each shard's.</param>
public sealed class DataParallelGradient(IGradientRule inner, ICommunicator comm, bool syncBatchNorm = false) : IGradientRule
{
    /// <inheritdoc/>
    public string Name => inner.Name;

    /// <inheritdoc/>
    public GradientDraw Draw(IBatchStream batches, RandomGenerator rng)
    {
        var view = new ShardView(batches, comm);
        var draw = inner.Draw(view, rng);
        double share = view.Share ?? 1.0 / comm.Size;
        return new GradientDraw(draw.Inputs, draw.Targets, (model, loss, noise, outputs) =>
        {
            (Tensor Value, Tensor[] Gradients) local;
            using (DataParallel.SynchronizeBatchNorm(comm, share, syncBatchNorm))
                local = draw.Gradient(model, loss, noise, outputs);
            var (value, grads) = local;
            var reduced = DataParallel.WeightedSum(comm, [value.Data, .. grads.Select(g => g.Data)], share);
            return (reduced[0], reduced[1..].Select(g => (Tensor)g).ToArray());
        }) { Share = share };
    }

    private sealed class ShardView(IBatchStream global, ICommunicator comm) : IBatchStream
    {
        public double? Share { get; private set; }

        public (NdArray Inputs, NdArray Targets) Next(RandomGenerator rng)
        {
            var (x, y) = global.Next(rng);
            var (xs, share) = DataParallel.ShardRows(x, comm);
            Share = share;
            return (xs, DataParallel.ShardRows(y, comm).Rows);
        }

        public Dictionary<string, string> Cursor() => global.Cursor();

        public void Restore(IReadOnlyDictionary<string, string> meta, string path) => global.Restore(meta, path);
    }
}

/// <summary>
/// An operator over a batch sharded across ranks: each rank applies its shard's operator (its HVP), and the
/// products are combined as Σ_r share_r·A_r·v in one all-reduce, so Lanczos, power iteration and Hutchinson run
/// unchanged on top with their vectors replicated (every rank draws the same start from the same seed and receives
/// the same bits from the all-reduce).
/// </summary>
/// <param name="local">This rank's shard's operator.</param>
/// <param name="share">This rank's share n_r/N of the batch.</param>
/// <param name="comm">The ranks.</param>
/// <param name="syncBatchNorm">The local products run with BatchNorm synchronized over the ranks (the global batch's Hessian).</param>
public sealed class DistributedOperator(ILinearOperator local, double share, ICommunicator comm, bool syncBatchNorm = false) : ILinearOperator
{
    /// <inheritdoc/>
    public long Dimension => local.Dimension;
    /// <inheritdoc/>
    public DType DType => local.DType;
    /// <inheritdoc/>
    public Device Device => local.Device;

    /// <inheritdoc/>
    public NdArray Apply(NdArray v)
    {
        NdArray product;
        using (DataParallel.SynchronizeBatchNorm(comm, share, syncBatchNorm)) product = local.Apply(v);
        return DataParallel.WeightedSum(comm, [product], share)[0];
    }
}

/// <summary>A batch split over the ranks as <see cref="GradientNoise"/> takes it: this rank's contiguous shard and sums over the ranks.</summary>
/// <param name="comm">The ranks.</param>
/// <param name="total">Examples in the whole batch.</param>
public sealed class ExampleShards(ICommunicator comm, int total) : IExampleShards
{
    /// <inheritdoc/>
    public int Start { get; } = DataParallel.Shard(total, comm.Rank, comm.Size).Start;
    /// <inheritdoc/>
    public int Total => total;

    /// <inheritdoc/>
    public double[] Sum(double[] values)
    {
        var copy = (double[])values.Clone();
        comm.AllReduceSum(copy);
        return copy;
    }

    /// <inheritdoc/>
    public NdArray[] Sum(IReadOnlyList<NdArray> arrays, double weight) => DataParallel.WeightedSum(comm, arrays, weight);
}

/// <summary>The ranks as the replica group of <see cref="Autodiff.Primitives.CrossReplicaSum"/>: sums staged through the host, this rank's share of the batch.</summary>
/// <param name="comm">The ranks.</param>
/// <param name="share">This rank's share of the batch in the computation at hand.</param>
public sealed class ReplicaGroup(ICommunicator comm, double share) : Autodiff.Primitives.IReplicaGroup
{
    /// <inheritdoc/>
    public double Share => share;

    /// <inheritdoc/>
    public NdArray Sum(NdArray x) => DataParallel.WeightedSum(comm, [x], 1)[0];
}
