using Curvature.Engine;
using Curvature.Kernels;

namespace Curvature.Spectral;

/// <summary>A Monte-Carlo estimate with its standard error (sample standard deviation / √probes).</summary>
public sealed record Estimate(double Value, double StandardError, int Probes);

/// <summary>
/// Hutchinson's estimators with Rademacher probes z (Hutchinson 1989): tr(A) = E[zᵀAz] and
/// diag(A) = E[z ⊙ Az]; each reported with its standard error over the probes.
/// </summary>
public static class Hutchinson
{
    /// <summary>Trace estimate from <paramref name="probes"/> Rademacher probes.</summary>
    public static Estimate Trace(ILinearOperator op, int probes, RandomGenerator rng)
    {
        if (probes < 1) throw new ArgumentOutOfRangeException(nameof(probes), probes, "Hutchinson needs at least one probe.");
        var samples = new double[probes];
        for (int i = 0; i < probes; i++)
        {
            var z = rng.Rademacher(new Shape((int)op.Dimension), op.DType, op.Device);
            samples[i] = z.Dot(op.Apply(z));
        }
        return Summarize(samples);
    }

    /// <summary>Diagonal estimate (mean of z ⊙ Az) and the element-wise standard errors.</summary>
    public static (NdArray Diagonal, NdArray StandardError) Diagonal(ILinearOperator op, int probes, RandomGenerator rng)
    {
        if (probes < 1) throw new ArgumentOutOfRangeException(nameof(probes), probes, "Hutchinson needs at least one probe.");
        // Welford's update keeps the variance exact when the samples agree (no E[x²] − E[x]² cancellation).
        NdArray? mean = null, m2 = null;
        for (int i = 1; i <= probes; i++)
        {
            var z = rng.Rademacher(new Shape((int)op.Dimension), op.DType, op.Device);
            var s = z * op.Apply(z);
            if (mean is null) { mean = s; m2 = s.ZerosLike(); continue; }
            var delta = s - mean;
            mean = mean + delta / i;
            m2 = m2! + delta * (s - mean);
        }
        if (probes == 1) return (mean!, mean!.ZerosLike());
        var stderr = (m2! / (probes - 1.0)).Apply(Curvature.Kernels.BinaryOp.Max, 0).Apply(Curvature.Kernels.UnaryOp.Sqrt) / Math.Sqrt(probes);
        return (mean!, stderr);
    }

    /// <summary>
    /// The trace estimate of Lanczos runs started at Rademacher probes z: the first Lanczos vector is z/√n, so
    /// zᵀAz = n·α₁ and each run is one Hutchinson sample at no extra cost (the probes of SLQ give the trace).
    /// </summary>
    public static Estimate TraceFromLanczos(IReadOnlyList<LanczosResult> runs, long dimension) =>
        Summarize(runs.Select(r => dimension * r.Alpha[0]).ToArray());

    /// <summary>Mean and standard error of samples.</summary>
    public static Estimate Summarize(IReadOnlyList<double> samples)
    {
        int m = samples.Count;
        double mean = samples.Average();
        double var = m > 1 ? samples.Sum(x => (x - mean) * (x - mean)) / (m - 1) : 0;
        return new Estimate(mean, Math.Sqrt(var / m), m);
    }
}
