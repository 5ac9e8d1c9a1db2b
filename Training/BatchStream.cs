using Curvature.Engine;
using Curvature.Models.Data;

namespace Curvature.Training;

/// <summary>
/// Shuffled minibatches, a fresh permutation each epoch (the last partial batch is dropped). Its cursor is the
/// random stream (seed and offset) the epoch's permutation was drawn from and the position in it, so a checkpoint
/// can restore it exactly, whichever stream the caller draws from.
/// </summary>
internal sealed class BatchStream(Dataset data, int size)
{
    /// <summary>Batches per epoch.</summary>
    public int BatchesPerEpoch => data.Count / Math.Min(size, data.Count);

    private long[]? order;

    /// <summary>Examples the stream draws from.</summary>
    public int Count => data.Count;

    public ulong EpochOffset { get; private set; }
    public ulong EpochSeed { get; private set; }
    public int Position { get; private set; }

    public Dataset Next(RandomGenerator rng)
    {
        int take = Math.Min(size, data.Count);
        if (order is null || Position + take > order.Length)
        {
            (EpochSeed, EpochOffset) = (rng.Seed, rng.Offset);
            order = Dataset.Permutation(data.Count, rng);
            Position = 0;
        }
        var batch = data.Select(order[Position..(Position + take)]);
        Position += take;
        return batch;
    }

    /// <summary>The cursor as checkpoint metadata: the epoch's stream and the position in its permutation.</summary>
    public Dictionary<string, string> Cursor() => new()
    {
        ["epoch_seed"] = EpochSeed.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["epoch_offset"] = EpochOffset.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["position"] = Position.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    /// <summary>Restores <see cref="Cursor"/>'s metadata; a checkpoint from before <c>epoch_seed</c> was written takes <paramref name="fallbackSeed"/>.</summary>
    public void Restore(IReadOnlyDictionary<string, string> meta, string path, ulong fallbackSeed) =>
        Restore(meta.ContainsKey("epoch_seed") ? Optimizers.Checkpoint.Unsigned(meta, "epoch_seed", path) : fallbackSeed,
            Optimizers.Checkpoint.Unsigned(meta, "epoch_offset", path), Optimizers.Checkpoint.Integer(meta, "position", path, 0, Count));

    private void Restore(ulong seed, ulong epochOffset, int position)
    {
        (EpochSeed, EpochOffset) = (seed, epochOffset);
        order = Dataset.Permutation(data.Count, new RandomGenerator(seed, epochOffset));
        Position = position;
    }
}

/// <summary>
/// Shuffled minibatches of a dataset, a fresh permutation each epoch (the last partial batch dropped), with a
/// cursor that checkpoints and resumes exactly: stochastic gradient descent on a fixed set of examples.
/// </summary>
public sealed class MinibatchStream(Dataset data, int size, ulong seed) : IBatchStream
{
    private readonly BatchStream stream = new(data, size > 0 && size <= data.Count ? size
        : throw new ArgumentOutOfRangeException(nameof(size), size, $"a minibatch takes 1 to {data.Count} examples (the dataset)."));

    /// <inheritdoc/>
    public (NdArray Inputs, NdArray Targets) Next(RandomGenerator rng)
    {
        var b = stream.Next(rng);
        return (b.Inputs, b.Labels);
    }

    /// <inheritdoc/>
    public Dictionary<string, string> Cursor() => stream.Cursor();

    /// <inheritdoc/>
    public void Restore(IReadOnlyDictionary<string, string> meta, string path) => stream.Restore(meta, path, seed);
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
