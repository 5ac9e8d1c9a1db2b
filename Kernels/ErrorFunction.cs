namespace Curvature.Kernels;

/// <summary>
/// The error function erf x = (2/√π) ∫₀ˣ e^(−t²) dt, which .NET does not provide: for |x| ≤ 3 the series
/// erf x = (2x/√π) e^(−x²) Σ (2x²)ⁿ / (2n+1)!! (Abramowitz and Stegun 7.1.6), whose terms are all positive so
/// nothing cancels, and beyond it 1 − erfc x from the continued fraction erfc x = e^(−x²)/√π · 1/(x + ½/(x + 1/(x + 3/2/(x + …)))),
/// evaluated by the modified Lentz method (Numerical Recipes §5.2).
/// </summary>
public static class ErrorFunction
{
    // Constants, not static fields: the GPU kernels compile this same function with ILGPU.
    private const double TwoOverRootPi = 1.1283791670955126, InvSqrtPi = 0.56418958354775629;

    /// <summary>erf x in double precision.</summary>
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
            return TwoOverRootPi * x * ScalarMath.Exp(-x2) * sum;
        }
        double r = a > 27 ? 0 : Erfc(a);
        return x > 0 ? 1 - r : r - 1;
    }

    /// <summary>erfc x = 1 − erf x for x &gt; 3 by the continued fraction.</summary>
    private static double Erfc(double x)
    {
        const double tiny = 1e-300;
        // b₀ = x; aₖ = k/2, bₖ = x.
        double f = x, c = x, d = 0;
        for (int k = 1; k < 500; k++)
        {
            double ak = k / 2.0;
            d = x + ak * d;
            if (Math.Abs(d) < tiny) d = tiny;
            c = x + ak / c;
            if (Math.Abs(c) < tiny) c = tiny;
            d = 1 / d;
            double delta = c * d;
            f *= delta;
            if (Math.Abs(delta - 1) < 1e-16) break;
        }
        return ScalarMath.Exp(-x * x) * InvSqrtPi / f;
    }
}
