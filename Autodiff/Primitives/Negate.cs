using Curvature.Engine;
using Curvature.Kernels.Cpu;
using Curvature.Kernels;

namespace Curvature.Autodiff.Primitives;

/// <summary>y = −x. JVP: ẏ = −ẋ. VJP: x̄ = −ȳ.</summary>
public sealed class Negate : Primitive
{
    /// <summary>The op (stateless).</summary>
    public static readonly Negate Instance = new();
    /// <inheritdoc/>
    public override string Name => "neg";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => x[0].Apply(UnaryOp.Neg);
    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y) => xDot[0] is null ? null : -xDot[0]!;
    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed) => [-yBar];
}
