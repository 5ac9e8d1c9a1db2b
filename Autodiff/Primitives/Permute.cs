using Curvature.Engine;

namespace Curvature.Autodiff.Primitives;

/// <summary>y = x with axes permuted (y axis i = x axis p[i]). JVP: ẏ = permute(ẋ, p). VJP: x̄ = permute(ȳ, p⁻¹).</summary>
public sealed class Permute(int[] axes) : Primitive
{
    /// <summary>The permutation p.</summary>
    public int[] Axes { get; } = axes;
    /// <inheritdoc/>
    public override string Name => "permute";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => x[0].Permute(Axes);
    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y) => xDot[0]?.Permute(Axes);
    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed)
    {
        var inverse = new int[Axes.Length];
        for (int i = 0; i < Axes.Length; i++) inverse[Axes[i]] = i;
        return [yBar.Permute(inverse)];
    }
}
