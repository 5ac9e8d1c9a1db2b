using Curvature.Engine;

namespace Curvature.Autodiff.Primitives;

/// <summary>y = x broadcast to a larger shape. JVP: ẏ = broadcast_to(ẋ). VJP: x̄ = sum_to(ȳ, x.shape).</summary>
public sealed class BroadcastTo(Shape shape) : Primitive
{
    /// <summary>The target shape.</summary>
    public Shape Target { get; } = shape;
    /// <inheritdoc/>
    public override string Name => "broadcast_to";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => x[0].BroadcastTo(Target);
    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y) => xDot[0]?.BroadcastTo(Target);
    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed) => [yBar.SumTo(x[0].Shape)];
}
