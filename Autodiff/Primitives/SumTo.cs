using Curvature.Engine;

namespace Curvature.Autodiff.Primitives;

/// <summary>
/// y = x summed over the axes along which <c>Target</c> broadcasts to x.shape (the adjoint of broadcasting).
/// JVP: ẏ = sum_to(ẋ). VJP: x̄ = broadcast_to(ȳ, x.shape).
/// </summary>
public sealed class SumTo(Shape shape) : Primitive
{
    /// <summary>The target shape.</summary>
    public Shape Target { get; } = shape;
    /// <inheritdoc/>
    public override string Name => "sum_to";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => x[0].SumTo(Target);
    /// <inheritdoc/>
    protected internal override bool JvpReadsOutput => false;
    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y) => xDot[0]?.SumTo(Target);
    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed) => [yBar.BroadcastTo(x[0].Shape)];
}
