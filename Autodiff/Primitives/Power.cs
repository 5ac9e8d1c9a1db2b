using Curvature.Engine;
using Curvature.Kernels.Cpu;
using Curvature.Kernels;

namespace Curvature.Autodiff.Primitives;

/// <summary>y = xᵖ for a constant exponent p. JVP: ẏ = p·xᵖ⁻¹ ⊙ ẋ. VJP: x̄ = p·xᵖ⁻¹ ⊙ ȳ.</summary>
public sealed class Power(double exponent) : Primitive
{
    /// <summary>The constant exponent p.</summary>
    public double Exponent { get; } = exponent;
    /// <inheritdoc/>
    public override string Name => "pow";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => x[0].Apply(BinaryOp.Pow, Exponent);
    private Tensor Slope(Tensor x) => Exponent == 1 ? NdArray.Scalar(1, x.DType, x.Device) : Exponent * x.Pow(Exponent - 1);
    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y) => xDot[0] is null ? null : xDot[0]! * Slope(x[0]);
    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed) => [yBar * Slope(x[0])];
}
