namespace Curvature.Optimizers;

/// <summary>
/// Where each update rule's iteration on a quadratic of curvature λ turns unstable, as the product η·λ: the edge of
/// stability lines of the plots and CAEO's bound. On f = ½λw² every rule here is a linear recurrence, unstable once
/// an eigenvalue of its matrix crosses −1.
/// </summary>
public static class StabilityEdge
{
    /// <summary>Gradient descent: w' = (1 − ηλ)w, stable iff ηλ &lt; 2.</summary>
    public const double GradientDescent = 2;

    /// <summary>Heavy ball, b' = μb + g, w' = w − ηb': the matrix [[1 − ηλ, −ημ], [λ, μ]] has an eigenvalue −1 at ηλ = 2 + 2μ.</summary>
    public static double HeavyBall(double mu) => 2 + 2 * mu;

    /// <summary>
    /// Nesterov as <see cref="Momentum"/> takes it, b' = μb + g, w' = w − η(g + μb'): the matrix [[1 − ηλ(1 + μ), −ημ²], [λ, μ]] has an
    /// eigenvalue −1 at ηλ = (2 + 2μ)/(1 + 2μ).
    /// </summary>
    public static double Nesterov(double mu) => (2 + 2 * mu) / (1 + 2 * mu);

    /// <summary>
    /// Adam's, on the preconditioned sharpness λmax(P⁻¹H) with the preconditioner frozen: the exponential moving average
    /// m' = β₁m + (1 − β₁)g makes it (2 + 2β₁)/(1 − β₁), 38 at β₁ = 0.9 (Cohen et al. 2022, "Adaptive gradient methods at
    /// the edge of stability").
    /// </summary>
    public static double Adam(double beta1) => (2 + 2 * beta1) / (1 - beta1);

    /// <summary>
    /// The edge of <paramref name="optimizer"/> on the raw Hessian's λmax: GD and L4 (whose step is a GD step) 2, heavy ball
    /// and Nesterov as above, CAEO its own <see cref="Caeo.StabilityLimit"/>; NaN where the raw λmax has no such edge (Adam,
    /// Hi-DLR, DCAO's moving μ).
    /// </summary>
    public static double Of(IOptimizer optimizer) => optimizer switch
    {
        Caeo c => c.StabilityLimit,
        Momentum { Nesterov: true } m => Nesterov(m.Beta),
        Momentum m => HeavyBall(m.Beta),
        Curvature.Optimizers.GradientDescent or L4 => GradientDescent,
        _ => double.NaN,
    };
}
