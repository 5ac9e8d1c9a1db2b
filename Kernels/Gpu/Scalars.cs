using System.Numerics;

namespace Curvature.Kernels.Gpu;

/// <summary>
/// Conversions between an element type and float64 inside kernels. ILGPU compiles the generic-math operators
/// of float and double, but not <c>CreateTruncating</c> (it inspects <c>typeof</c>), so kernels take this
/// second type argument, a struct whose calls inline to a plain conversion.
/// </summary>
public interface IScalarKind<T> where T : unmanaged
{
    /// <summary>v converted (rounded or truncated) to T.</summary>
    T From(double v);

    /// <summary>v as float64.</summary>
    double ToDouble(T v);
}

/// <summary>float32 elements.</summary>
public readonly struct Float32Kind : IScalarKind<float>
{
    /// <inheritdoc/>
    public float From(double v) => (float)v;
    /// <inheritdoc/>
    public double ToDouble(float v) => v;
}

/// <summary>float64 elements.</summary>
public readonly struct Float64Kind : IScalarKind<double>
{
    /// <inheritdoc/>
    public double From(double v) => v;
    /// <inheritdoc/>
    public double ToDouble(double v) => v;
}

/// <summary>int64 elements (labels and indices); conversion truncates toward zero, as the CPU's cast does.</summary>
public readonly struct Int64Kind : IScalarKind<long>
{
    /// <inheritdoc/>
    public long From(double v) => (long)v;
    /// <inheritdoc/>
    public double ToDouble(long v) => v;
}

/// <summary>
/// Scalar special functions written only with operations every ILGPU backend compiles (no static fields,
/// no exceptions): the same formulas as the CPU kernels' <see cref="Cpu.ErrorFunction"/> and
/// <see cref="Cpu.Gaussian"/>, evaluated in float64.
/// </summary>
public static class SpecialFunctions
{
    private const double TwoOverRootPi = 1.1283791670955126;
    private const double InvSqrt2 = 0.70710678118654752;
    private const double InvSqrt2Pi = 0.39894228040143268;
    private const double InvSqrtPi = 0.56418958354775629;

    /// <summary>
    /// erf x: for |x| ≤ 3 the positive series (2x/√π) e^(−x²) Σ (2x²)ⁿ/(2n+1)!! (Abramowitz and Stegun 7.1.6),
    /// beyond it 1 − erfc x from the continued fraction by the modified Lentz method (Numerical Recipes §5.2).
    /// </summary>
    public static double Erf(double x)
    {
        if (double.IsNaN(x)) return x;
        double a = Math.Abs(x);
        if (a <= 3)
        {
            double x2 = x * x, term = 1, sum = 1;
            for (int n = 1; n < 200; n++)
            {
                term *= 2 * x2 / (2 * n + 1);
                sum += term;
                if (term < 1e-17 * sum) break;
            }
            return TwoOverRootPi * x * Math.Exp(-x2) * sum;
        }
        double r = 0;
        if (a <= 27)
        {
            const double tiny = 1e-300;
            double f = a, c = a, d = 0;
            for (int k = 1; k < 500; k++)
            {
                double ak = k * 0.5;
                d = a + ak * d;
                if (Math.Abs(d) < tiny) d = tiny;
                c = a + ak / c;
                if (Math.Abs(c) < tiny) c = tiny;
                d = 1 / d;
                double delta = c * d;
                f *= delta;
                if (Math.Abs(delta - 1) < 1e-16) break;
            }
            r = Math.Exp(-a * a) * InvSqrtPi / f;
        }
        return x > 0 ? 1 - r : r - 1;
    }

    /// <summary>The exact GELU x·Φ(x) = ½x(1 + erf(x/√2)).</summary>
    public static double Gelu(double x) => 0.5 * x * (1 + Erf(x * InvSqrt2));

    /// <summary>GELU's derivative Φ(x) + x·φ(x).</summary>
    public static double GeluDerivative(double x) => 0.5 * (1 + Erf(x * InvSqrt2)) + x * InvSqrt2Pi * Math.Exp(-0.5 * x * x);

    /// <summary>GELU's second derivative φ(x)·(2 − x²).</summary>
    public static double GeluSecondDerivative(double x) => InvSqrt2Pi * Math.Exp(-0.5 * x * x) * (2 - x * x);
}
