using Curvature.Engine;
using Curvature.Kernels.Cpu;
using Curvature.Kernels;

namespace Curvature.Autodiff.Primitives;

/// <summary>y = ln x. JVP: ẏ = ẋ / x. VJP: x̄ = ȳ / x.</summary>
public sealed class Log : Primitive
{
    /// <summary>The op (stateless).</summary>
    public static readonly Log Instance = new();
    /// <inheritdoc/>
    public override string Name => "log";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => x[0].Apply(UnaryOp.Log);
    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y) => xDot[0] is null ? null : xDot[0]! / x[0];
    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed) => [yBar / x[0]];
}
