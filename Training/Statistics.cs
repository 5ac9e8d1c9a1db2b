namespace Curvature.Training;

/// <summary>Mean, sample standard deviation and a Student-t confidence interval of a sample.</summary>
/// <param name="Count">Values in the sample.</param>
/// <param name="Mean">Their mean.</param>
/// <param name="Std">Their sample standard deviation (n − 1; 0 for one value).</param>
/// <param name="Low">Lower end of the confidence interval (NaN for fewer than two values).</param>
/// <param name="High">Upper end.</param>
public sealed record Summary(int Count, double Mean, double Std, double Low, double High)
{
    /// <summary>Half the interval's width.</summary>
    public double HalfWidth => (High - Low) / 2;
}

/// <summary>A paired t-test of two samples over the same seeds: the mean difference a − b, its t and two-sided p.</summary>
/// <param name="Count">Pairs.</param>
/// <param name="MeanDifference">Mean of a − b.</param>
/// <param name="T">t = mean(d)/(sd(d)/√n), n − 1 degrees of freedom.</param>
/// <param name="P">Two-sided p-value.</param>
public sealed record PairedTest(int Count, double MeanDifference, double T, double P);

/// <summary>
/// Small-sample statistics for comparisons over seeds: Student-t intervals and paired t-tests. The t distribution's
/// CDF is 1 − ½·I_{ν/(ν+t²)}(ν/2, ½) for t ≥ 0, with the regularized incomplete beta function I evaluated by its
/// continued fraction (Numerical Recipes, 3rd ed., §6.4) and ln Γ by Lanczos' approximation (§6.1).
/// </summary>
public static class Statistics
{
    /// <summary>Mean, std and the <paramref name="level"/> (two-sided) Student-t interval of the finite values.</summary>
    public static Summary Summarize(IEnumerable<double> values, double level = 0.95)
    {
        var v = values.Where(double.IsFinite).ToArray();
        if (v.Length == 0) return new Summary(0, double.NaN, double.NaN, double.NaN, double.NaN);
        double mean = v.Average();
        double std = v.Length > 1 ? Math.Sqrt(v.Sum(x => (x - mean) * (x - mean)) / (v.Length - 1)) : 0;
        if (v.Length < 2) return new Summary(1, mean, 0, double.NaN, double.NaN);
        double h = StudentQuantile(0.5 + level / 2, v.Length - 1) * std / Math.Sqrt(v.Length);
        return new Summary(v.Length, mean, std, mean - h, mean + h);
    }

    /// <summary>The paired t-test of a against b (same length, pair i from the same seed); null for fewer than two pairs.</summary>
    public static PairedTest? Paired(IReadOnlyList<double> a, IReadOnlyList<double> b)
    {
        if (a.Count != b.Count) throw new ArgumentException($"a paired test needs samples of one length, got {a.Count} and {b.Count}.");
        var d = a.Zip(b, (x, y) => x - y).Where(double.IsFinite).ToArray();
        if (d.Length < 2) return null;
        double mean = d.Average(), sd = Math.Sqrt(d.Sum(x => (x - mean) * (x - mean)) / (d.Length - 1));
        if (sd == 0) return new PairedTest(d.Length, mean, mean == 0 ? 0 : Math.CopySign(double.PositiveInfinity, mean), mean == 0 ? 1 : 0);
        double t = mean / (sd / Math.Sqrt(d.Length));
        return new PairedTest(d.Length, mean, t, 2 * (1 - StudentCdf(Math.Abs(t), d.Length - 1)));
    }

    /// <summary>P(T ≤ t) for Student's t with ν degrees of freedom.</summary>
    public static double StudentCdf(double t, double nu)
    {
        if (!(nu > 0)) throw new ArgumentOutOfRangeException(nameof(nu), nu, "degrees of freedom must be positive.");
        if (double.IsPositiveInfinity(t)) return 1;
        if (double.IsNegativeInfinity(t)) return 0;
        double tail = 0.5 * RegularizedBeta(nu / (nu + t * t), nu / 2, 0.5);
        return t >= 0 ? 1 - tail : tail;
    }

    /// <summary>The p-quantile of Student's t with ν degrees of freedom (bisection on the CDF to 1e-12).</summary>
    public static double StudentQuantile(double p, double nu)
    {
        if (!(p > 0 && p < 1)) throw new ArgumentOutOfRangeException(nameof(p), p, "a quantile needs 0 < p < 1.");
        if (p < 0.5) return -StudentQuantile(1 - p, nu);
        double lo = 0, hi = 1;
        while (StudentCdf(hi, nu) < p) hi *= 2;
        for (int i = 0; i < 200 && hi - lo > 1e-12 * Math.Max(1, hi); i++)
        {
            double mid = 0.5 * (lo + hi);
            if (StudentCdf(mid, nu) < p) lo = mid; else hi = mid;
        }
        return 0.5 * (lo + hi);
    }

    /// <summary>The regularized incomplete beta function I_x(a, b).</summary>
    public static double RegularizedBeta(double x, double a, double b)
    {
        if (x <= 0) return 0;
        if (x >= 1) return 1;
        double front = Math.Exp(LogGamma(a + b) - LogGamma(a) - LogGamma(b) + a * Math.Log(x) + b * Math.Log(1 - x));
        // The continued fraction converges fast for x < (a + 1)/(a + b + 2); use the symmetry I_x(a, b) = 1 − I_{1−x}(b, a) otherwise.
        return x < (a + 1) / (a + b + 2) ? front * BetaFraction(x, a, b) / a : 1 - front * BetaFraction(1 - x, b, a) / b;
    }

    private static double BetaFraction(double x, double a, double b)
    {
        const double tiny = 1e-300;
        double c = 1, d = 1 - (a + b) * x / (a + 1);
        d = 1 / (Math.Abs(d) < tiny ? tiny : d);
        double h = d;
        for (int m = 1; m <= 300; m++)
        {
            int m2 = 2 * m;
            double aa = m * (b - m) * x / ((a + m2 - 1) * (a + m2));
            d = 1 + aa * d; d = 1 / (Math.Abs(d) < tiny ? tiny : d);
            c = 1 + aa / c; if (Math.Abs(c) < tiny) c = tiny;
            h *= d * c;
            aa = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1));
            d = 1 + aa * d; d = 1 / (Math.Abs(d) < tiny ? tiny : d);
            c = 1 + aa / c; if (Math.Abs(c) < tiny) c = tiny;
            double step = d * c;
            h *= step;
            if (Math.Abs(step - 1) < 1e-15) break;
        }
        return h;
    }

    /// <summary>ln Γ(x) for x &gt; 0 (Lanczos, g = 7, 9 terms; about 1e-15 relative).</summary>
    public static double LogGamma(double x)
    {
        ReadOnlySpan<double> c = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
                                  12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
        if (x < 0.5) return Math.Log(Math.PI / Math.Abs(Math.Sin(Math.PI * x))) - LogGamma(1 - x);
        x -= 1;
        double s = c[0];
        for (int i = 1; i < 9; i++) s += c[i] / (x + i);
        double t = x + 7.5;
        return 0.5 * Math.Log(2 * Math.PI) + (x + 0.5) * Math.Log(t) - t + Math.Log(s);
    }
}
