namespace Curvature.Optimizers;

/// <summary>Argument checks with messages that name the optimizer and the value.</summary>
internal static class Check
{
    public static double Positive(double v, string optimizer, string what) =>
        v > 0 && double.IsFinite(v) ? v : throw new ArgumentOutOfRangeException(what, v, $"{optimizer}: the {what} must be positive and finite, got {v}.");

    public static double NonNegative(double v, string optimizer, string what) =>
        v >= 0 && double.IsFinite(v) ? v : throw new ArgumentOutOfRangeException(what, v, $"{optimizer}: the {what} must be non-negative and finite, got {v}.");

    public static double Fraction(double v, string optimizer, string what) =>
        v >= 0 && v < 1 ? v : throw new ArgumentOutOfRangeException(what, v, $"{optimizer}: {what} must lie in [0, 1), got {v}.");

    public static void Gradients(StepContext c, string optimizer)
    {
        if (c.Parameters.Count != c.Gradients.Count)
            throw new ArgumentException($"{optimizer}: {c.Parameters.Count} parameters but {c.Gradients.Count} gradients.");
        for (int i = 0; i < c.Parameters.Count; i++)
            if (c.Parameters[i].Shape != c.Gradients[i].Shape)
                throw new ArgumentException($"{optimizer}: parameter {i} has shape {c.Parameters[i].Shape} but its gradient {c.Gradients[i].Shape}.");
        if (!double.IsFinite(c.Loss)) throw new ArithmeticException($"{optimizer}: the loss at step {c.Step} is {c.Loss}; stopping.");
    }

    public static Spectral.ILinearOperator Curvature(StepContext c, string optimizer) =>
        c.Curvature?.Invoke() ?? throw new InvalidOperationException($"{optimizer}: step {c.Step} needs a curvature probe but the step context has none.");

    public static double FiniteCurvature(double v, StepContext c, string optimizer) =>
        double.IsFinite(v) ? v : throw new ArithmeticException($"{optimizer}: the curvature estimate at step {c.Step} is {v}; stopping.");
}
