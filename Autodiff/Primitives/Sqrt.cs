using Curvature.Engine;
using Curvature.Kernels.Cpu;
using Curvature.Kernels;

namespace Curvature.Autodiff.Primitives;

/// <summary>y = √x. JVP: ẏ = ẋ / (2y). VJP: x̄ = ȳ / (2y).</summary>
public sealed class Sqrt : Primitive
{
    /// <summary>The op (stateless).</summary>
    public static readonly Sqrt Instance = new();
    /// <inheritdoc/>
    public override string Name => "sqrt";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => x[0].Apply(UnaryOp.Sqrt);
    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y) => xDot[0] is null ? null : xDot[0]! / (2.0 * y);
    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed) => [yBar / (2.0 * y)];
}
