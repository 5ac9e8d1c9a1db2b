using Curvature.Engine;

namespace Curvature.Autodiff.Primitives;

/// <summary>y = x viewed with another shape (no copy). JVP: ẏ = reshape(ẋ). VJP: x̄ = reshape(ȳ, x.shape).</summary>
public sealed class Reshape(Shape shape) : Primitive
{
    /// <summary>The new shape.</summary>
    public Shape Target { get; } = shape;
    /// <inheritdoc/>
    public override string Name => "reshape";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => x[0].Reshape(Target);
    /// <inheritdoc/>
    protected internal override bool JvpReadsOutput => false;
    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y) => xDot[0]?.Reshape(Target);
    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed) => [yBar.Reshape(x[0].Shape)];
}
