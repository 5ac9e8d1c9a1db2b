using Curvature.Engine;

namespace Curvature.Autodiff.Primitives;

/// <summary>y = [x₁, x₂, …] joined along an axis. JVP: ẏ = concat(ẋᵢ, with zeros for constant inputs). VJP: x̄ᵢ = the slice of ȳ where xᵢ sits.</summary>
public sealed class Concat(int axis) : Primitive
{
    /// <summary>The joining axis (non-negative).</summary>
    public int Axis { get; } = axis;
    /// <inheritdoc/>
    public override string Name => "concat";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => NdArray.Concat(x, Axis);
    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y)
    {
        if (xDot.All(t => t is null)) return null;
        var parts = new Tensor[x.Length];
        for (int i = 0; i < x.Length; i++) parts[i] = xDot[i] ?? NdArray.Zeros(x[i].Shape, x[i].DType, x[i].Device);
        return Tensor.Concat(parts, Axis);
    }
    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed)
    {
        var bars = new Tensor?[x.Length];
        int at = 0;
        for (int i = 0; i < x.Length; i++)
        {
            int n = x[i].Shape[Axis];
            if (needed[i]) bars[i] = yBar.Slice(Axis, at, n);
            at += n;
        }
        return bars;
    }
}
