using Curvature.Engine;
using Curvature.Kernels.Cpu;
using Curvature.Kernels;

namespace Curvature.Autodiff.Primitives;

/// <summary>
/// y = max over axes of x. With the constant weights w = [x = max] / (number of maxima), ties sharing
/// equally: JVP: ẏ = Σ w ⊙ ẋ over the axes. VJP: x̄ = w ⊙ broadcast(ȳ).
/// </summary>
public sealed class Max(int[] axes, bool keepDims) : Primitive
{
    /// <summary>The reduced axes (sorted, non-negative).</summary>
    public int[] Axes { get; } = axes;
    /// <summary>Whether reduced axes stay as size 1.</summary>
    public bool KeepDims { get; } = keepDims;
    /// <inheritdoc/>
    public override string Name => "max";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => x[0].Max(Axes, KeepDims);
    private Tensor Weights(Tensor x, Tensor y)
    {
        var kept = x.Data.ReducedShape(Axes, true);
        var mask = x.Data.Apply(BinaryOp.Equal, y.Data.Reshape(kept));
        return mask / mask.Sum(Axes, true);
    }
    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y) =>
        xDot[0] is null ? null : (xDot[0]! * Weights(x[0], y)).Sum(Axes, KeepDims);
    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed) =>
        [yBar.Reshape(x[0].Data.ReducedShape(Axes, true)) * Weights(x[0], y)];
}
