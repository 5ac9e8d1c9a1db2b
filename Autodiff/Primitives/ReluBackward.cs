using Curvature.Engine;
using Curvature.Kernels.Cpu;
using Curvature.Kernels;

namespace Curvature.Autodiff.Primitives;

/// <summary>
/// z = g where x &gt; 0, else 0: ReLU's JVP and VJP as one pass (no mask written). Linear in g and piecewise
/// constant in x, so JVP: ż = ReluBackward(x, ġ) (x contributes 0 almost everywhere) and VJP: ḡ = ReluBackward(x, z̄),
/// x̄ = 0.
/// </summary>
public sealed class ReluBackward : Primitive
{
    /// <summary>The op (stateless).</summary>
    public static readonly ReluBackward Instance = new();
    /// <inheritdoc/>
    public override string Name => "relu_backward";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => x[0].Apply(BinaryOp.MaskPositive, x[1]);
    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor z) => xDot[1] is null ? null : Instance.Apply(x[0], xDot[1]!);
    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor z, Tensor zBar, bool[] needed) =>
        [null, needed[1] ? Instance.Apply(x[0], zBar) : null];
}
