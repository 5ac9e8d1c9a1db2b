using Curvature.Engine;

namespace Curvature.Autodiff.Primitives;

/// <summary>
/// y = x[i], row i along axis 0, a view (no copy). A primitive with several results of one shape returns them stacked
/// from one kernel (<see cref="NormalizeScaleShiftBackward"/>'s statistics and coefficients); its callers read them
/// back as rows. JVP: ẏ = ẋ[i]. VJP: x̄ is zero but for row i, which is ȳ.
/// </summary>
public sealed class Row(int index) : Primitive
{
    /// <summary>The row taken.</summary>
    public int Index { get; } = index;
    /// <inheritdoc/>
    public override string Name => "row";

    /// <summary>Tensors of one shape stacked along a new axis 0 (what <see cref="Row"/> reads back): the op-by-op form of a stacked result.</summary>
    public static Tensor Stack(IReadOnlyList<Tensor> rows) => Tensor.Concat(rows.Select(r => r.Reshape([1, .. r.Shape.ToArray()])).ToArray(), 0);

    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x)
    {
        var shape = x[0].Shape;
        if (shape.Rank == 0 || Index < 0 || Index >= shape[0])
            throw new ArgumentOutOfRangeException(nameof(Index), $"row: row {Index} of an array of shape {shape}; expected 0 ≤ row < the first dimension.");
        return x[0].Rows(Index, 1).Reshape(shape.ToArray()[1..]);
    }
    /// <inheritdoc/>
    protected internal override long Flops(NdArray[] x, NdArray y) => 0;
    /// <inheritdoc/>
    protected internal override bool JvpReadsOutput => false;
    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y) => xDot[0] is { } along ? Apply(along) : null;
    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed)
    {
        var shape = x[0].Shape.ToArray();
        int rows = shape[0];
        Tensor Zeros(int count) => NdArray.Zeros(new Shape([count, .. shape[1..]]), x[0].DType, x[0].Device);
        var parts = new List<Tensor>(3);
        if (Index > 0) parts.Add(Zeros(Index));
        parts.Add(yBar.Reshape([1, .. shape[1..]]));
        if (Index < rows - 1) parts.Add(Zeros(rows - 1 - Index));
        return [parts.Count == 1 ? parts[0] : Tensor.Concat(parts, 0)];
    }
}
