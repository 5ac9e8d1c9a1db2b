using Curvature.Engine;

namespace Curvature.Autodiff.Primitives;

/// <summary>
/// y = Σ over axes of x. JVP: ẏ = Σ ẋ over the same axes. VJP: x̄ = broadcast_to(ȳ with the axes kept, x.shape).
/// </summary>
public sealed class Sum(int[] axes, bool keepDims) : Primitive
{
    /// <summary>The reduced axes (sorted, non-negative).</summary>
    public int[] Axes { get; } = axes;
    /// <summary>Whether reduced axes stay as size 1.</summary>
    public bool KeepDims { get; } = keepDims;
    /// <inheritdoc/>
    public override string Name => "sum";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => x[0].Sum(Axes, KeepDims);
    /// <inheritdoc/>
    protected internal override bool JvpReadsOutput => false;
    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y) => xDot[0]?.Sum(Axes, KeepDims);
    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed) =>
        [yBar.Reshape(x[0].Data.ReducedShape(Axes, true)).BroadcastTo(x[0].Shape)];
}
