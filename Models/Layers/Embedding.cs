using Curvature.Autodiff;
using Curvature.Engine;

namespace Curvature.Models.Layers;

/// <summary>
/// A lookup table [count, dim] indexed by int64 ids, as PyTorch's nn.Embedding (weight initialized N(0, 1)); the
/// output has the ids' shape plus [dim]. Its gradient is a scatter-add of the output cotangent.
/// </summary>
public sealed class Embedding : Module
{
    /// <summary>A table of <paramref name="count"/> rows of <paramref name="dim"/> values.</summary>
    public Embedding(int count, int dim, RandomGenerator rng, DType dtype = DType.Float32) =>
        Weight = AddParameter("weight", rng.Normal(new Shape(count, dim), dtype: dtype));

    /// <summary>The table, [count, dim].</summary>
    public Parameter Weight { get; }

    /// <inheritdoc/>
    public override Tensor Forward(Bindings b, Tensor ids)
    {
        if (ids.DType != DType.Int64) throw new ArgumentException($"embedding: ids are {ids.DType.Name()} {ids.Shape}; expected int64.");
        var y = b[Weight].Gather(ids);
        return b.Tap is { } tap ? tap(this, ids, y) : y;
    }
}
