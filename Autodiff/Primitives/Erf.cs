using Curvature.Engine;
using Curvature.Kernels.Cpu;
using Curvature.Kernels;

namespace Curvature.Autodiff.Primitives;

/// <summary>y = erf x. JVP: ẏ = (2/√π)·e^(−x²) ⊙ ẋ. VJP: x̄ = (2/√π)·e^(−x²) ⊙ ȳ.</summary>
public sealed class Erf : Primitive
{
    /// <summary>The op (stateless).</summary>
    public static readonly Erf Instance = new();
    /// <inheritdoc/>
    public override string Name => "erf";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => x[0].Apply(UnaryOp.Erf);
    private static Tensor Slope(Tensor x) => (-(x * x)).Exp() * (2 / Math.Sqrt(Math.PI));
    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y) => xDot[0] is null ? null : xDot[0]! * Slope(x[0]);
    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed) => [yBar * Slope(x[0])];
}
