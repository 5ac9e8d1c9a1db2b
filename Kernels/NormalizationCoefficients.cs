namespace Curvature.Kernels;

/// <summary>
/// The per-group coefficients of a training-mode BatchNorm, y = x̂·γ + β with x̂ = (x − μ)·r and r = 1/√(σ² + ε): the
/// one definition of the formulas that the CPU and GPU kernels share, in float64 (the callers round once to the element
/// type). Each is a handful of operations on one group's values; computed op by op on [G] vectors they took a dozen
/// kernel launches per layer and direction, which on a GPU cost more than the arithmetic.
/// </summary>
public static class NormalizationCoefficients
{
    /// <summary>r = 1/√(σ² + ε): the square root, then the quotient, two roundings (as the op-by-op form rounds).</summary>
    public static double Rstd(double variance, double epsilon) => 1.0 / Math.Sqrt(variance + epsilon);

    /// <summary>The forward's scale s = γ·r (y = x·s + t).</summary>
    public static double Scale(double gamma, double variance, double epsilon) => gamma * Rstd(variance, epsilon);

    /// <summary>The forward's shift t = β − μ·s (y = x·s + t; PyTorch's CPU kernel writes BatchNorm so).</summary>
    public static double Shift(double beta, double mean, double scale) => beta - mean * scale;

    /// <summary>
    /// The backward's coefficients, x̄ = g·a + x·k + c, from ḡ = mean g and h = mean(g·x̂) over the group:
    /// x̄ = γr·(g − ḡ − x̂·h) (Ioffe and Szegedy 2015, §3), so a = γ·r, k = −a·r·h and c = −a·ḡ − μ·k.
    /// </summary>
    public static BackwardCoefficients Backward(double gamma, double mean, double variance, double epsilon, double meanG, double meanGXhat)
    {
        double r = Rstd(variance, epsilon), a = gamma * r, k = -(a * r * meanGXhat);
        return new BackwardCoefficients { A = a, K = k, C = -(a * meanG) - mean * k };
    }
}

/// <summary>x̄ = g·A + x·K + C for one group (see <see cref="NormalizationCoefficients.Backward"/>).</summary>
public struct BackwardCoefficients
{
    /// <summary>The coefficients of g and x, and the constant.</summary>
    public double A, K, C;
}
