using Curvature.Engine;

namespace Curvature.Autodiff.Primitives;

/// <summary>
/// Per-group statistics of a node's primal inputs, kept for the node's next VJP when those inputs are constants: a
/// recorded product's transposed sweep (<see cref="RecordedHvp"/>) runs the same node's VJP at every product, on the
/// same primal arrays, so their means and scales need one pass, not one per product. With any input carrying
/// derivatives (nested levels) nothing is kept: the statistics must then be differentiable values of this call.
/// </summary>
internal sealed class ConstantStatistics
{
    private NdArray[]? source;
    private Tensor[]? values;

    /// <summary>The statistics of <paramref name="inputs"/>'s first three entries: those kept if computed from the same constant arrays, else fresh.</summary>
    public Tensor[] Get(Tensor[] inputs, Func<Tensor[]> compute)
    {
        bool constant = inputs[0].IsConstant && inputs[1].IsConstant && inputs[2].IsConstant;
        if (!constant) return compute();
        if (source is { } s && values is { } v && ReferenceEquals(s[0], inputs[0].Data) && ReferenceEquals(s[1], inputs[1].Data) && ReferenceEquals(s[2], inputs[2].Data))
            return v;
        var fresh = compute();
        source = [inputs[0].Data, inputs[1].Data, inputs[2].Data];
        values = fresh;
        return fresh;
    }
}
