using Curvature.Engine;

namespace Curvature.Models.Data;

/// <summary>
/// Inputs [N, …] and int64 labels [N] of a classification data set, held in memory; for sequence models the
/// labels are [N, T] (a target per position).
/// </summary>
public sealed class Dataset
{
    /// <summary>Pairs inputs with labels; the first axes must agree.</summary>
    public Dataset(NdArray inputs, NdArray labels)
    {
        if (labels.DType != DType.Int64 || labels.Rank is not (1 or 2) || inputs.Rank < 1 || inputs.Shape[0] != labels.Shape[0])
            throw new ArgumentException($"dataset: inputs {inputs.Shape} and labels {labels.DType.Name()} {labels.Shape}; expected [N, …] inputs and [N] (or [N, T]) int64 labels.");
        Inputs = inputs;
        Labels = labels;
    }

    /// <summary>The inputs, [N, …].</summary>
    public NdArray Inputs { get; }

    /// <summary>The labels, int64 [N] (or [N, T]).</summary>
    public NdArray Labels { get; }

    /// <summary>Number of examples.</summary>
    public int Count => Labels.Shape[0];

    /// <summary>Examples [start, start+count) as views (no copy).</summary>
    public Dataset Slice(int start, int count)
    {
        if (start < 0 || count < 0 || start + count > Count) throw new ArgumentOutOfRangeException(nameof(count), $"dataset: examples [{start}, {start + count}) are outside the {Count} available.");
        return new Dataset(Inputs.Rows(start, count), Labels.Rows(start, count));
    }

    /// <summary>The first <paramref name="count"/> examples.</summary>
    public Dataset Take(int count) => Slice(0, Math.Min(count, Count));

    /// <summary>The examples at the given indices (a copy).</summary>
    public Dataset Select(long[] indices)
    {
        var idx = NdArray.FromArray(indices, new Shape(indices.Length));
        int width = (int)(Inputs.Size / Math.Max(1, Count));
        var x = Inputs.Reshape(Count, width).Gather(idx).Reshape([indices.Length, .. Inputs.Shape.Skip(1)]);
        var y = Labels.Reshape(Count, 1).Gather(idx).Reshape(indices.Length);
        return new Dataset(x, y);
    }

    /// <summary>
    /// Minibatches of <paramref name="batchSize"/> examples (the last one may be smaller). With a generator, the
    /// order is a fresh random permutation (Fisher–Yates on the Philox stream); without one, file order.
    /// </summary>
    public IEnumerable<Dataset> Batches(int batchSize, RandomGenerator? shuffle = null)
    {
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "batch size must be positive.");
        if (shuffle is null)
        {
            for (int s = 0; s < Count; s += batchSize) yield return Slice(s, Math.Min(batchSize, Count - s));
            yield break;
        }
        var order = Permutation(Count, shuffle);
        for (int s = 0; s < Count; s += batchSize) yield return Select(order[s..Math.Min(Count, s + batchSize)]);
    }

    /// <summary>A uniformly random permutation of 0…n−1.</summary>
    public static long[] Permutation(int n, RandomGenerator rng)
    {
        var p = Enumerable.Range(0, n).Select(i => (long)i).ToArray();
        var u = rng.Uniform(new Shape(Math.Max(n, 1)), dtype: DType.Float64).ToArray<double>();
        for (int i = n - 1; i > 0; i--)
        {
            int j = (int)(u[i] * (i + 1));
            (p[i], p[j]) = (p[j], p[i]);
        }
        return p;
    }
}
