using Curvature.Engine;
using Curvature.Models.Data;

namespace Curvature.Training;

/// <summary>
/// Shuffled minibatches, a fresh permutation each epoch (the last partial batch is dropped). Its cursor is the
/// random-stream offset the epoch's permutation was drawn from and the position in it, so a checkpoint can
/// restore it exactly.
/// </summary>
internal sealed class BatchStream(Dataset data, int size)
{
    /// <summary>Batches per epoch.</summary>
    public int BatchesPerEpoch => data.Count / Math.Min(size, data.Count);

    private long[]? order;

    /// <summary>Examples the stream draws from.</summary>
    public int Count => data.Count;

    public ulong EpochOffset { get; private set; }
    public int Position { get; private set; }

    public Dataset Next(RandomGenerator rng)
    {
        int take = Math.Min(size, data.Count);
        if (order is null || Position + take > order.Length)
        {
            EpochOffset = rng.Offset;
            order = Dataset.Permutation(data.Count, rng);
            Position = 0;
        }
        var batch = data.Select(order[Position..(Position + take)]);
        Position += take;
        return batch;
    }

    public void Restore(ulong seed, ulong epochOffset, int position)
    {
        EpochOffset = epochOffset;
        order = Dataset.Permutation(data.Count, new RandomGenerator(seed, epochOffset));
        Position = position;
    }
}

/// <summary>The same batch every step: full-batch gradient descent (the Edge-of-Stability experiment). Its cursor is empty.</summary>
public sealed class FullBatchStream(NdArray inputs, NdArray targets) : IBatchStream
{
    /// <inheritdoc/>
    public (NdArray Inputs, NdArray Targets) Next(RandomGenerator rng) => (inputs, targets);
    /// <inheritdoc/>
    public Dictionary<string, string> Cursor() => [];
    /// <inheritdoc/>
    public void Restore(IReadOnlyDictionary<string, string> meta, string path) { }
}
