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

    /// <summary>
    /// The forward's coefficients and their tangents along (ẋ, γ̇, β̇), from p̄ = mean ẋ and q = mean(ẋ·x̂) over the
    /// group: μ̇ = p̄ and ṙ = −r³·C(ẋ, x) = −r²·q give ṡ = γ̇·r + γ·ṙ and ṫ = β̇ − μ̇·s − μ·ṡ, so ẏ = ẋ·s + x·ṡ + ṫ.
    /// </summary>
    public static TangentCoefficients Tangent(double gamma, double beta, double gammaDot, double betaDot, double mean, double variance, double epsilon,
        double meanXDot, double meanXDotXhat)
    {
        double r = Rstd(variance, epsilon), s = gamma * r, rDot = -(r * r * meanXDotXhat);
        double sDot = gammaDot * r + gamma * rDot;
        return new TangentCoefficients { S = s, T = Shift(beta, mean, s), SDot = sDot, TDot = betaDot - meanXDot * s - mean * sDot };
    }

    /// <summary>
    /// The tangents of <see cref="Backward"/>'s rows (Σu, Σu·x̂, a, k, c) along (ẋ, γ̇, u̇), from means over the group
    /// of u, u·x̂, ẋ, ẋ·x̂, u̇, u̇·x̂ and u·ẋ: with ṙ = −r²·mean(ẋx̂), μ̇ = mean ẋ and h = mean(u·x̂),
    /// ḣ = mean(u̇x̂) + r·(mean(uẋ) − ū·μ̇) + ṙ·h/r; then ȧ = γ̇r + γṙ, k̇ = −(ȧrh + aṙh + arḣ) and
    /// ċ = −(ȧū + a·mean u̇) − μ̇k − μk̇ (Σ̇u = n·mean u̇ and the second row n·ḣ).
    /// </summary>
    public static BackwardTangents BackwardTangent(double gamma, double gammaDot, double mean, double variance, double epsilon, double n,
        double meanU, double meanUXhat, double meanXDot, double meanXDotXhat, double meanUDot, double meanUDotXhat, double meanUXDot)
    {
        double r = Rstd(variance, epsilon), rDot = -(r * r * meanXDotXhat);
        double a = gamma * r, k = -(a * r * meanUXhat);
        double hDot = meanUDotXhat + r * (meanUXDot - meanU * meanXDot) + rDot * meanUXhat / r;
        double aDot = gammaDot * r + gamma * rDot;
        double kDot = -(aDot * r * meanUXhat + a * rDot * meanUXhat + a * r * hDot);
        return new BackwardTangents
        {
            Sum = n * meanUDot,
            Product = n * hDot,
            A = aDot,
            K = kDot,
            C = -(aDot * meanU + a * meanUDot) - meanXDot * k - mean * kDot,
        };
    }
}

/// <summary>s, t of y = x·s + t and their tangents for one group (see <see cref="NormalizationCoefficients.Tangent"/>).</summary>
public struct TangentCoefficients
{
    /// <summary>s, t, ṡ and ṫ.</summary>
    public double S, T, SDot, TDot;
}

/// <summary>The tangents of the backward's five rows for one group (see <see cref="NormalizationCoefficients.BackwardTangent"/>).</summary>
public struct BackwardTangents
{
    /// <summary>The tangents of Σu, Σu·x̂, a, k and c.</summary>
    public double Sum, Product, A, K, C;
}

/// <summary>x̄ = g·A + x·K + C for one group (see <see cref="NormalizationCoefficients.Backward"/>).</summary>
public struct BackwardCoefficients
{
    /// <summary>The coefficients of g and x, and the constant.</summary>
    public double A, K, C;
}
