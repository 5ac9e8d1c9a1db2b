namespace Curvature.Training;

/// <summary>
/// The figures a comparison reports about one run's loss curve: trailing means, steps to a target and stability
/// (the mean loss variance over a trailing window). Calibration (ECE) and accuracy are in <see cref="Models.Metrics"/>.
/// </summary>
public static class RunMetrics
{
    /// <summary>Trailing means over a window W (shorter at the start).</summary>
    public static double[] TrailingMean(double[] x, int w)
    {
        if (w < 1) throw new ArgumentOutOfRangeException(nameof(w), w, "the window must be at least 1.");
        var r = new double[x.Length];
        double sum = 0;
        for (int i = 0; i < x.Length; i++)
        {
            sum += x[i];
            if (i >= w) sum -= x[i - w];
            r[i] = sum / Math.Min(i + 1, w);
        }
        return r;
    }

    /// <summary>
    /// An exponential moving average of span W (β = 1 − 2/(W + 1), the span whose center of mass matches a window
    /// of W) with the start-up bias divided out, mₜ = Σ βᵗ⁻ⁱ(1 − β)xᵢ / (1 − βᵗ⁺¹), as Adam corrects its moments
    /// (Kingma and Ba 2015): unlike a trailing mean it has no kink where the window fills, so a plot shows no event
    /// that is not in the data. A constant series is returned unchanged from the first step.
    /// </summary>
    public static double[] ExponentialAverage(double[] x, int w)
    {
        if (w < 1) throw new ArgumentOutOfRangeException(nameof(w), w, "the span must be at least 1.");
        double beta = 1 - 2.0 / (w + 1), m = 0, power = 1;
        var r = new double[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            m = beta * m + (1 - beta) * x[i];
            power *= beta;
            r[i] = m / (1 - power);
        }
        return r;
    }

    /// <summary>The first step whose trailing mean loss is at or below the target, or null.</summary>
    public static int? StepsTo(double[] losses, double target, int w)
    {
        var m = TrailingMean(losses, w);
        for (int i = 0; i < m.Length; i++) if (m[i] <= target) return i;
        return null;
    }

    /// <summary>
    /// Steps done at the first evaluation whose value (a validation loss) is at or below the target, or null:
    /// the seeds' "epochs to a target validation loss" is this divided by the steps per epoch.
    /// </summary>
    public static int? StepsToEvaluated(IReadOnlyList<(int Step, double Value)> evaluations, double target)
    {
        foreach (var (step, value) in evaluations) if (value <= target) return step;
        return null;
    }

    /// <summary>Mean over steps t ≥ W−1 of the sample variance of the loss in the window ending at t (NaN when shorter than W).</summary>
    public static double Stability(double[] losses, int w)
    {
        if (losses.Length < w || w < 2) return double.NaN;
        double total = 0;
        int count = 0;
        for (int t = w - 1; t < losses.Length; t++)
        {
            var window = losses.AsSpan(t - w + 1, w);
            double mean = 0;
            foreach (var v in window) mean += v;
            mean /= w;
            double var = 0;
            foreach (var v in window) var += (v - mean) * (v - mean);
            total += var / (w - 1);
            count++;
        }
        return total / count;
    }
}
