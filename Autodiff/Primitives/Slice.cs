using Curvature.Engine;

namespace Curvature.Autodiff.Primitives;

/// <summary>
/// y = x[start : start+length] along an axis. JVP: ẏ = slice(ẋ). VJP: x̄ = ȳ padded with zeros back to
/// x.shape (a concatenation with constant zeros).
/// </summary>
public sealed class Slice(int axis, int start, int length) : Primitive
{
    /// <summary>The sliced axis (non-negative).</summary>
    public int Axis { get; } = axis;
    /// <summary>First index taken.</summary>
    public int Start { get; } = start;
    /// <summary>Number of indices taken.</summary>
    public int Length { get; } = length;
    /// <inheritdoc/>
    public override string Name => "slice";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => x[0].Slice(Axis, Start, Length);
    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y) => xDot[0]?.Slice(Axis, Start, Length);
    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed)
    {
        var parts = new List<Tensor>();
        Tensor Zeros(int n)
        {
            var dims = x[0].Shape.ToArray();
            dims[Axis] = n;
            return NdArray.Zeros(new Shape(dims), yBar.DType, yBar.Device);
        }
        if (Start > 0) parts.Add(Zeros(Start));
        parts.Add(yBar);
        int after = x[0].Shape[Axis] - Start - Length;
        if (after > 0) parts.Add(Zeros(after));
        return [parts.Count == 1 ? yBar : Tensor.Concat(parts, Axis)];
    }
}
