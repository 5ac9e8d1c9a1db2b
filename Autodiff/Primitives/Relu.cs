using Curvature.Engine;
using Curvature.Kernels.Cpu;

namespace Curvature.Autodiff.Primitives;

/// <summary>y = max(x, 0). With the constant mask m = [x &gt; 0]: JVP: ẏ = m ⊙ ẋ. VJP: x̄ = m ⊙ ȳ (the second derivative is 0 almost everywhere).</summary>
public sealed class Relu : Primitive
{
    /// <summary>The op (stateless).</summary>
    public static readonly Relu Instance = new();
    /// <inheritdoc/>
    public override string Name => "relu";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => x[0].Apply(UnaryOp.Relu);
    private static Tensor Mask(Tensor x) => x.Data.Apply(BinaryOp.Greater, 0);
    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y) => xDot[0] is null ? null : xDot[0]! * Mask(x[0]);
    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed) => [yBar * Mask(x[0])];
}
