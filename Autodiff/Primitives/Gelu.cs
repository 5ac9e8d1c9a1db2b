using Curvature.Engine;
using Curvature.Kernels.Cpu;
using Curvature.Kernels;

namespace Curvature.Autodiff.Primitives;

/// <summary>
/// y = x·Φ(x), the exact GELU, fused. JVP: ẏ = g(x)·ẋ and VJP: x̄ = g(x)·ȳ with g = Φ + x·φ the
/// <see cref="GeluDerivative"/> primitive, whose own rule (g' = φ·(2 − x²)) makes second derivatives exact.
/// </summary>
public sealed class Gelu : Primitive
{
    /// <summary>The op (stateless).</summary>
    public static readonly Gelu Instance = new();
    /// <inheritdoc/>
    public override string Name => "gelu";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => x[0].Apply(UnaryOp.Gelu);
    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y) => xDot[0] is null ? null : GeluDerivative.Instance.Apply(x[0]) * xDot[0]!;
    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed) => [GeluDerivative.Instance.Apply(x[0]) * yBar];
}

/// <summary>
/// g = Φ(x) + x·φ(x), GELU's derivative, fused. Its derivative g' = φ(x)·(2 − x²) is the fused
/// <see cref="GeluSecondDerivative"/>, so Hessian-vector products pay one pass for it.
/// </summary>
public sealed class GeluDerivative : Primitive
{
    /// <summary>The op (stateless).</summary>
    public static readonly GeluDerivative Instance = new();
    /// <inheritdoc/>
    public override string Name => "gelu_derivative";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => x[0].Apply(UnaryOp.GeluDerivative);

    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y) => xDot[0] is null ? null : GeluSecondDerivative.Instance.Apply(x[0]) * xDot[0]!;
    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed) => [GeluSecondDerivative.Instance.Apply(x[0]) * yBar];
}

/// <summary>
/// h = φ(x)·(2 − x²), GELU's second derivative, fused. Its derivative h' = φ(x)·x·(x² − 4) is written with
/// primitives (φ = e^(−x²/2)/√(2π)), so every order is exact.
/// </summary>
public sealed class GeluSecondDerivative : Primitive
{
    /// <summary>The op (stateless).</summary>
    public static readonly GeluSecondDerivative Instance = new();
    /// <inheritdoc/>
    public override string Name => "gelu_second_derivative";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => x[0].Apply(UnaryOp.GeluSecondDerivative);

    private static Tensor Slope(Tensor x) => (x * x * -0.5).Exp() * (1 / Math.Sqrt(2 * Math.PI)) * x * (x * x - 4.0);

    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y) => xDot[0] is null ? null : Slope(x[0]) * xDot[0]!;
    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed) => [Slope(x[0]) * yBar];
}
