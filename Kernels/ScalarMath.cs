using ILGPU;

namespace Curvature.Kernels;

/// <summary>
/// float64 exp, expm1, log, tanh, sin, cos and pow written in plain arithmetic, so the GPU kernels compile the
/// same code on every backend. On CUDA, ILGPU otherwise takes these functions from ILGPU.Algorithms. There,
/// float32 exp and log become the <c>ex2.approx</c> and <c>lg2.approx</c> instructions and float32 tanh becomes
/// <c>tanh.approx</c>, whose relative error is about 2⁻¹¹. Its float64 log is wrong by thousands of ulps near 1.
/// The kernels call these in float64 and round once to float32, so a GPU's values are those of the CPU to
/// within an ulp of the element type.
/// </summary>
/// <remarks>
/// The algorithms and constants are those of fdlibm 5.3 (Sun Microsystems, 1993; the basis of Java's StrictMath
/// and of most C libraries): e_exp.c, s_expm1.c, e_log.c, s_tanh.c, k_sin.c, k_cos.c and the medium-size case
/// of e_rem_pio2.c. Measured against glibc over a million arguments each: exp, log, sin and cos within 1 ulp,
/// tanh within 3. sin and cos are for |x| ≤ 2¹⁹·π/2, beyond which this reduction loses bits (the kernels call
/// them with angles in [0, 2π)).
/// </remarks>
public static class ScalarMath
{
    private const double Ln2Hi = 6.93147180369123816490e-01, Ln2Lo = 1.90821492927058770002e-10, InvLn2 = 1.44269504088896338700e+00;
    private const double ExpOverflow = 7.09782712893383973096e+02, ExpUnderflow = -7.45133219101941108420e+02;

    private static ulong Bits(double x) => Interop.FloatAsInt(x);
    private static double FromBits(ulong b) => Interop.IntAsFloat(b);

    /// <summary>2ᵏ for −1022 ≤ k ≤ 1023, exactly.</summary>
    private static double Pow2(int k) => FromBits((ulong)(k + 1023) << 52);

    /// <summary>y·2ᵏ for k from −2044 to 2046, by at most two exact scalings (the second rounds a subnormal result).</summary>
    private static double Scale(double y, int k) =>
        k > 1023 ? y * Pow2(1023) * Pow2(k - 1023) : k < -1022 ? y * Pow2(-1022) * Pow2(k + 1022) : y * Pow2(k);

    /// <summary>k = the integer nearest x/ln 2, halves away from zero (fdlibm's rounding).</summary>
    private static int NearestMultipleOfLn2(double x) => (int)(InvLn2 * x + (x < 0 ? -0.5 : 0.5));

    /// <summary>eˣ (e_exp.c: x = k·ln 2 + r with |r| ≤ ½ln 2, then a rational approximation of eʳ).</summary>
    public static double Exp(double x)
    {
        if (double.IsNaN(x)) return x;
        if (x > ExpOverflow) return double.PositiveInfinity;
        if (x < ExpUnderflow) return 0;
        if (Math.Abs(x) < 3.7252902984e-09) return 1 + x;
        const double P1 = 1.66666666666666019037e-01, P2 = -2.77777777770155933842e-03, P3 = 6.61375632143793436117e-05,
            P4 = -1.65339022054652515390e-06, P5 = 4.13813679705723846039e-08;
        int k = Math.Abs(x) > 0.5 * Ln2Hi ? NearestMultipleOfLn2(x) : 0;
        double hi = x - k * Ln2Hi, lo = k * Ln2Lo, r = hi - lo, t = r * r;
        double c = r - t * (P1 + t * (P2 + t * (P3 + t * (P4 + t * P5))));
        double y = 1 - ((lo - r * c / (2 - c)) - hi);
        return k == 0 ? y : Scale(y, k);
    }

    /// <summary>eˣ − 1, accurate where x is near 0 (s_expm1.c).</summary>
    public static double Expm1(double x)
    {
        if (double.IsNaN(x)) return x;
        if (x > ExpOverflow) return double.PositiveInfinity;
        if (x < -3.88162421113569373274e+01) return -1; // eˣ below half an ulp of 1
        const double Q1 = -3.33333333333331316428e-02, Q2 = 1.58730158725481460165e-03, Q3 = -7.93650757867487942473e-05,
            Q4 = 4.00821782732936239552e-06, Q5 = -2.01099218183624371326e-07;
        double ax = Math.Abs(x), c = 0;
        int k = 0;
        if (ax > 3.46573590279972654709e-01)
        {
            double hi, lo;
            if (ax < 1.03972077083991796413e+00)
            {
                k = x > 0 ? 1 : -1;
                hi = x > 0 ? x - Ln2Hi : x + Ln2Hi;
                lo = x > 0 ? Ln2Lo : -Ln2Lo;
            }
            else
            {
                k = NearestMultipleOfLn2(x);
                hi = x - k * Ln2Hi;
                lo = k * Ln2Lo;
            }
            x = hi - lo;
            c = hi - x - lo;
        }
        else if (ax < 5.55111512312578270212e-17) return x;

        double hfx = 0.5 * x, hxs = x * hfx;
        double r1 = 1 + hxs * (Q1 + hxs * (Q2 + hxs * (Q3 + hxs * (Q4 + hxs * Q5))));
        double t = 3 - r1 * hfx;
        double e = hxs * ((r1 - t) / (6 - x * t));
        if (k == 0) return x - (x * e - hxs);
        e = x * (e - c) - c;
        e -= hxs;
        if (k == -1) return 0.5 * (x - e) - 0.5;
        if (k == 1) return x < -0.25 ? -2 * (e - (x + 0.5)) : 1 + 2 * (x - e);
        if (k <= -2 || k > 56) return Scale(1 - (e - x), k) - 1;
        if (k < 20) return Scale(1 - Pow2(-k) - (e - x), k);
        return Scale(x - (e + Pow2(-k)) + 1, k);
    }

    /// <summary>ln x (e_log.c: x = 2ᵏ·(1 + f) with √2/2 ≤ 1 + f &lt; √2, then ln(1 + f) from s = f/(2 + f)).</summary>
    public static double Log(double x)
    {
        if (double.IsNaN(x) || x < 0) return double.NaN;
        if (x == 0) return double.NegativeInfinity;
        if (x == double.PositiveInfinity) return x;
        const double Lg1 = 6.666666666666735130e-01, Lg2 = 3.999999999940941908e-01, Lg3 = 2.857142874366239149e-01,
            Lg4 = 2.222219843214978396e-01, Lg5 = 1.818357216161805012e-01, Lg6 = 1.531383769920937332e-01, Lg7 = 1.479819860511658591e-01;
        int k = 0;
        ulong b = Bits(x);
        if (b < 0x0010000000000000UL) { k = -54; b = Bits(x * 18014398509481984.0); } // subnormal: scale by 2⁵⁴
        int hx = (int)(b >> 32);
        k += (hx >> 20) - 1023;
        hx &= 0x000fffff;
        int i = (hx + 0x95f64) & 0x100000;
        // x or x/2, whichever lies in [√2/2, √2).
        double m = FromBits(((ulong)(uint)(hx | (i ^ 0x3ff00000)) << 32) | (b & 0xffffffffUL));
        k += i >> 20;
        double f = m - 1, dk = k;
        if ((0x000fffff & (2 + hx)) < 3)
        {
            // |f| < 2⁻²⁰: two terms of the series.
            if (f == 0) return k == 0 ? 0 : dk * Ln2Hi + dk * Ln2Lo;
            double q = f * f * (0.5 - 0.33333333333333333 * f);
            return k == 0 ? f - q : dk * Ln2Hi - ((q - dk * Ln2Lo) - f);
        }
        double s = f / (2 + f), z = s * s, w = z * z;
        double t1 = w * (Lg2 + w * (Lg4 + w * Lg6)), t2 = z * (Lg1 + w * (Lg3 + w * (Lg5 + w * Lg7))), r = t2 + t1;
        if (((hx - 0x6147a) | (0x6b851 - hx)) > 0)
        {
            double hfsq = 0.5 * f * f;
            return k == 0 ? f - (hfsq - s * (hfsq + r)) : dk * Ln2Hi - ((hfsq - (s * (hfsq + r) + dk * Ln2Lo)) - f);
        }
        return k == 0 ? f - s * (f - r) : dk * Ln2Hi - ((s * (f - r) - dk * Ln2Lo) - f);
    }

    /// <summary>tanh x from expm1 (s_tanh.c): 1 − 2/(e²ˣ + 1) for |x| ≥ 1, −t/(t + 2) with t = e⁻²ˣ − 1 below.</summary>
    public static double Tanh(double x)
    {
        if (double.IsNaN(x)) return x;
        double ax = Math.Abs(x), z;
        if (ax >= 22) z = 1;
        else if (ax < 2.77555756156289135106e-17) return x;
        else if (ax >= 1) z = 1 - 2 / (Expm1(2 * ax) + 2);
        else
        {
            double t = Expm1(-2 * ax);
            z = -t / (t + 2);
        }
        return x < 0 ? -z : z;
    }

    /// <summary>sin x for |x| ≤ 2¹⁹·π/2.</summary>
    public static double Sin(double x)
    {
        if (Math.Abs(x) <= 7.85398163397448278999e-01) return SinKernel(x, 0, false);
        if (!(Math.Abs(x) < double.PositiveInfinity)) return double.NaN;
        int n = ReduceByHalfPi(x, out double y0, out double y1);
        return (n & 3) switch
        {
            0 => SinKernel(y0, y1, true),
            1 => CosKernel(y0, y1),
            2 => -SinKernel(y0, y1, true),
            _ => -CosKernel(y0, y1),
        };
    }

    /// <summary>cos x for |x| ≤ 2¹⁹·π/2.</summary>
    public static double Cos(double x)
    {
        if (Math.Abs(x) <= 7.85398163397448278999e-01) return CosKernel(x, 0);
        if (!(Math.Abs(x) < double.PositiveInfinity)) return double.NaN;
        int n = ReduceByHalfPi(x, out double y0, out double y1);
        return (n & 3) switch
        {
            0 => CosKernel(y0, y1),
            1 => -SinKernel(y0, y1, true),
            2 => -CosKernel(y0, y1),
            _ => SinKernel(y0, y1, true),
        };
    }

    /// <summary>
    /// xʸ with <see cref="Math.Pow"/>'s special cases. For |y| ≤ 64, y = n + f with n a nearest integer:
    /// xⁿ by repeated squaring (exact where the result is, else a few ulps) times x^f, which is √x for f = ½
    /// and exp(f·ln x) otherwise, whose error is about |f·ln x| ≤ ½|ln x| ulps. Larger |y| goes by
    /// ±exp(y·ln|x|), about (1 + |y·ln x|) ulps.
    /// </summary>
    public static double Pow(double x, double y)
    {
        if (y == 0 || x == 1) return 1;
        if (double.IsNaN(x) || double.IsNaN(y)) return double.NaN;
        double ay = Math.Abs(y);
        if (ay <= 64 && y == (int)y) return PowInteger(x, (int)y);
        if (ay <= 64 && x > 0 && x < double.PositiveInfinity)
        {
            // The nearest integer, and for a half-integer the one toward zero, so xⁿ cannot overflow where x^y does not.
            int n = (int)(y + (y < 0 ? -0.5 : 0.5));
            if (Math.Abs(n - y) == 0.5) n = (int)y;
            double f = y - n;
            double r = PowInteger(x, n) * (f == 0.5 ? Math.Sqrt(x) : f == -0.5 ? 1 / Math.Sqrt(x) : Exp(f * Log(x)));
            if (r != 0 && r < double.PositiveInfinity) return r;
        }
        if (y == double.PositiveInfinity) return Math.Abs(x) == 1 ? 1 : Math.Abs(x) > 1 ? y : 0;
        if (y == double.NegativeInfinity) return Math.Abs(x) == 1 ? 1 : Math.Abs(x) > 1 ? 0 : double.PositiveInfinity;
        // Beyond 2⁵³ every double is an even integer.
        bool integer = ay >= 9007199254740992.0 || y == (long)y;
        bool odd = integer && ay < 9007199254740992.0 && ((long)ay & 1) == 1;
        if (x == double.NegativeInfinity) return y > 0 ? (odd ? x : double.PositiveInfinity) : (odd ? -0.0 : 0);
        if (x < 0 && !integer) return double.NaN;
        double ax = Math.Abs(x), m;
        if (ax == 0) m = y > 0 ? 0 : double.PositiveInfinity;
        else if (ax == double.PositiveInfinity) m = y > 0 ? ax : 0;
        else m = Exp(y * Log(ax));
        return x < 0 && odd ? -m : x == 0 && odd ? (y > 0 ? x : 1 / x) : m;
    }

    /// <summary>xⁿ by repeated squaring; 1/x⁻ⁿ for negative n.</summary>
    private static double PowInteger(double x, int n)
    {
        int m = Math.Abs(n);
        double r = 1, power = x;
        while (true)
        {
            if ((m & 1) != 0) r *= power;
            m >>= 1;
            if (m == 0) break;
            power *= power;
        }
        return n < 0 ? 1 / r : r;
    }

    /// <summary>sin on [−π/4, π/4] of y0 + y1 (k_sin.c; tail says whether y1 is present).</summary>
    private static double SinKernel(double x, double y, bool tail)
    {
        if (Math.Abs(x) < 7.45058059692382812500e-09) return x;
        const double S1 = -1.66666666666666324348e-01, S2 = 8.33333333332248946124e-03, S3 = -1.98412698298579493134e-04,
            S4 = 2.75573137070700676789e-06, S5 = -2.50507602534068634195e-08, S6 = 1.58969099521155010221e-10;
        double z = x * x, v = z * x, r = S2 + z * (S3 + z * (S4 + z * (S5 + z * S6)));
        return tail ? x - ((z * (0.5 * y - v * r) - y) - v * S1) : x + v * (S1 + z * r);
    }

    /// <summary>cos on [−π/4, π/4] of x + y (k_cos.c).</summary>
    private static double CosKernel(double x, double y)
    {
        if (Math.Abs(x) < 7.45058059692382812500e-09) return 1;
        const double C1 = 4.16666666666666019037e-02, C2 = -1.38888888888741095749e-03, C3 = 2.48015872894767294178e-05,
            C4 = -2.75573143513906633035e-07, C5 = 2.08757232129817482790e-09, C6 = -1.13596475577881948265e-11;
        double z = x * x, r = z * (C1 + z * (C2 + z * (C3 + z * (C4 + z * (C5 + z * C6)))));
        int high = (int)(Bits(Math.Abs(x)) >> 32);
        if (high < 0x3fd33333) return 1 - (0.5 * z - (z * r - x * y)); // |x| < 0.3
        // 1 − qx − (z/2 − qx − …) with qx a quarter of |x| cut to its high word (0.28125 above 0.78125).
        double qx = high > 0x3fe90000 ? 0.28125 : FromBits((ulong)(uint)(high - 0x00200000) << 32);
        double hz = 0.5 * z - qx, a = 1 - qx;
        return a - (hz - (z * r - x * y));
    }

    /// <summary>x = n·π/2 + (y0 + y1) with |y0 + y1| ≤ π/4 (e_rem_pio2.c, medium case: π/2 in three 33-bit pieces,
    /// a further piece taken only when the previous subtraction canceled bits).</summary>
    private static int ReduceByHalfPi(double x, out double y0, out double y1)
    {
        const double InvPio2 = 6.36619772367581382433e-01,
            Pio2_1 = 1.57079632673412561417e+00, Pio2_1t = 6.07710050650619224932e-11,
            Pio2_2 = 6.07710050630396597660e-11, Pio2_2t = 2.02226624879595063154e-21,
            Pio2_3 = 2.02226624871116645580e-21, Pio2_3t = 8.47842766036889956997e-32;
        double t = Math.Abs(x);
        int n = (int)(t * InvPio2 + 0.5);
        double fn = n;
        double r = t - fn * Pio2_1, w = fn * Pio2_1t;
        int j = (int)(Bits(t) >> 52);
        y0 = r - w;
        if (j - (int)((Bits(y0) >> 52) & 0x7ff) > 16)
        {
            // The first piece canceled more than 16 bits: subtract the second.
            double u = r;
            w = fn * Pio2_2;
            r = u - w;
            w = fn * Pio2_2t - ((u - r) - w);
            y0 = r - w;
            if (j - (int)((Bits(y0) >> 52) & 0x7ff) > 49)
            {
                u = r;
                w = fn * Pio2_3;
                r = u - w;
                w = fn * Pio2_3t - ((u - r) - w);
                y0 = r - w;
            }
        }
        y1 = r - y0 - w;
        if (x < 0)
        {
            y0 = -y0;
            y1 = -y1;
            return -n;
        }
        return n;
    }

    private const double InvSqrt2 = 0.70710678118654752440, InvSqrt2Pi = 0.39894228040143267794;

    /// <summary>The exact GELU x·Φ(x) = ½x(1 + erf(x/√2)) in float64 (one formula for the CPU's scalar paths and every GPU kernel).</summary>
    public static double Gelu(double x) => 0.5 * x * (1 + ErrorFunction.Erf(x * InvSqrt2));

    /// <summary>GELU′(x) = Φ(x) + x·φ(x) in float64.</summary>
    public static double GeluDerivative(double x) => 0.5 * (1 + ErrorFunction.Erf(x * InvSqrt2)) + x * InvSqrt2Pi * Exp(-0.5 * x * x);

    /// <summary>GELU″(x) = φ(x)·(2 − x²) in float64.</summary>
    public static double GeluSecondDerivative(double x) => InvSqrt2Pi * Exp(-0.5 * x * x) * (2 - x * x);
}
