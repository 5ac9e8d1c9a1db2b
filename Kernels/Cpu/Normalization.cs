using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.Intrinsics;

namespace Curvature.Kernels.Cpu;

/// <summary>
/// Normalization over groups: data viewed as [A, G, B], each of the G groups holding the A·B elements
/// x[a, g, b]. BatchNorm is A = N, G = C, B = H·W; LayerNorm is A = 1, G = rows, B = features. Per group:
/// μ = mean x, σ² = mean (x − μ)² (segments centered on their own means, so no cancellation), r = 1/√(σ² + ε), x̂ = (x − μ)·r; and the
/// Jacobian product J·u = r·(u − mean u − x̂·mean(u·x̂)), which is also the VJP (J is symmetric). Every kernel is
/// two passes in memory order: one reads the rows and accumulates per-group sums (chunks of whole rows, each
/// with its own partial sums, merged in chunk order, so results do not depend on the thread count), one writes
/// the rows from per-group coefficients. Walking a group at a time instead reads a BatchNorm group as N segments a
/// whole image apart: in a ResNet-20 gradient the Jacobian took 23.5 ms that way and 12.7 ms streaming, the
/// normalization 15.6 and 10.5 (`Bench models --profile`). Sums are accumulated in float64 over float32 segments.
/// </summary>
public static class Normalization
{
    /// <summary>
    /// y = (x − μ)·r per group; when <paramref name="mean"/> and <paramref name="variance"/> are given (g values each),
    /// they receive μ and the biased σ² that were used, so a running-statistics update needs no second pass.
    /// </summary>
    public static void Normalize<T>(ReadOnlySpan<T> x, Span<T> y, int a, int g, int b, double epsilon, double[]? mean = null, double[]? variance = null)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        unsafe
        {
            fixed (T* px = x) fixed (T* py = y)
            {
                T* xs = px, ys = py;
                var moments = GroupMoments(xs, a, g, b);
                var m = new T[g];
                var r = new T[g];
                for (int gi = 0; gi < g; gi++)
                {
                    if (mean is not null) mean[gi] = moments[gi].Mean;
                    if (variance is not null) variance[gi] = moments[gi].Variance;
                    m[gi] = T.CreateTruncating(moments[gi].Mean);
                    r[gi] = T.CreateTruncating(moments[gi].Rstd(epsilon));
                }
                ForRows(a, g, b, (o, gi) => CenterAndScale(xs + o, ys + o, b, m[gi], r[gi]));
            }
        }
    }

    /// <summary>y = J(x)·u = r·(u − mean u − x̂·mean(u·x̂)) per group.</summary>
    public static void Jacobian<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> u, Span<T> y, int a, int g, int b, double epsilon) where T : unmanaged, IFloatingPointIeee754<T>
    {
        unsafe
        {
            fixed (T* px = x) fixed (T* pu = u) fixed (T* py = y)
            {
                T* xs = px, us = pu, ys = py;
                var (moments, sumU, sumUC) = CenteredProductSums(us, xs, a, g, b);
                var m = new T[g];
                var coefficients = new T[3 * g];
                double count = (double)a * b;
                for (int gi = 0; gi < g; gi++)
                {
                    double mean = moments[gi].Mean, r = moments[gi].Rstd(epsilon);
                    double meanU = sumU[gi] / count, meanUXhat = r * sumUC[gi] / count;
                    m[gi] = T.CreateTruncating(mean);
                    coefficients[3 * gi] = T.CreateTruncating(r);
                    coefficients[3 * gi + 1] = T.CreateTruncating(-r * r * meanUXhat);
                    coefficients[3 * gi + 2] = T.CreateTruncating(-r * meanU);
                }
                ForRows(a, g, b, (o, gi) => Combine(us + o, xs + o, ys + o, b, m[gi], coefficients[3 * gi], coefficients[3 * gi + 1], coefficients[3 * gi + 2]));
            }
        }
    }

    /// <summary>
    /// The tangent of J(x)·u along (v, w), y = ∂ₓ(J u)[v] + J·w, given ju = J(x)·u (w may be empty: zero). With
    /// c = x − μ and the per-group means S_v = mean v, S_vc = mean(v c), S_uc = mean(u c), S_jv = mean(ju v),
    /// S_w = mean w, S_wc = mean(w c), the composed rule −r·(mean(x̂v)·ju + mean(ux̂)·Jv + mean(ju v)·x̂) + Jw
    /// expands to the per-group linear combination
    /// y = −r²S_vc·ju − r³S_uc·v + r·w + (r⁵S_ucS_vc − r²S_jv − r³S_wc)·c + r³S_ucS_v − r·S_w:
    /// one read pass for the statistics and the six means, one write pass, instead of some fifteen passes.
    /// </summary>
    public static void JacobianTangent<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> u, ReadOnlySpan<T> ju, ReadOnlySpan<T> v, ReadOnlySpan<T> w,
        Span<T> y, int a, int g, int b, double epsilon) where T : unmanaged, IFloatingPointIeee754<T>
    {
        bool hasW = !w.IsEmpty;
        unsafe
        {
            fixed (T* px = x) fixed (T* pu = u) fixed (T* pj = ju) fixed (T* pv = v) fixed (T* pw = w) fixed (T* py = y)
            {
                T* xs = px, us = pu, js = pj, vs = pv, ws = pw, ys = py;
                // One read pass for the statistics and the sums, each segment centered on its own mean m̃ₛ:
                // Σz·(x − μ) = Σₛ [Σz·(x − m̃ₛ) + m̃ₛ·Σzₛ] − μ·Σz for z = v, u, w (s[6] holds Σu, s[7..9] the m̃ₛ·Σzₛ).
                var (moments, sums) = GroupSums(a, g, b, 10, (long o, ref RunningMoments moment, Span<double> s) =>
                {
                    T center = moment.AddSegment(xs + o, b);
                    double c = double.CreateTruncating(center), v0 = s[0], u0 = s[6], w0 = s[4];
                    TangentSums(xs + o, us + o, js + o, vs + o, hasW ? ws + o : null, b, center, s);
                    s[7] += c * (s[0] - v0);
                    s[8] += c * (s[6] - u0);
                    s[9] += c * (s[4] - w0);
                });
                var m = new T[g];
                var k = new T[5 * g];
                double count = (double)a * b;
                for (int gi = 0; gi < g; gi++)
                {
                    var s = sums.AsSpan(10 * gi, 10);
                    double mean = moments[gi].Mean, r = moments[gi].Rstd(epsilon);
                    double sv = s[0] / count, svc = (s[1] + (s[7] - mean * s[0])) / count, suc = (s[2] + (s[8] - mean * s[6])) / count;
                    double sjv = s[3] / count, sw = s[4] / count, swc = (s[5] + (s[9] - mean * s[4])) / count;
                    double r2 = r * r, r3 = r2 * r;
                    m[gi] = T.CreateTruncating(mean);
                    k[5 * gi] = T.CreateTruncating(-r2 * svc);
                    k[5 * gi + 1] = T.CreateTruncating(-r3 * suc);
                    k[5 * gi + 2] = T.CreateTruncating(r);
                    k[5 * gi + 3] = T.CreateTruncating(r3 * r2 * suc * svc - r2 * sjv - r3 * swc);
                    k[5 * gi + 4] = T.CreateTruncating(r3 * suc * sv - r * sw);
                }
                ForRows(a, g, b, (o, gi) =>
                    TangentCombine(xs + o, js + o, vs + o, hasW ? ws + o : null, ys + o, b, m[gi], k[5 * gi], k[5 * gi + 1], k[5 * gi + 2], k[5 * gi + 3], k[5 * gi + 4]));
            }
        }
    }

    /// <summary>Adds Σv, Σv·c, Σu·c, Σju·v, Σw, Σw·c, Σu (c = x − m) of one segment to <paramref name="sums"/>; w may be null.</summary>
    private static unsafe void TangentSums<T>(T* x, T* u, T* ju, T* v, T* w, int n, T m, Span<double> sums) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = 0;
        T sv = T.Zero, svc = T.Zero, suc = T.Zero, sjv = T.Zero, sw = T.Zero, swc = T.Zero, su = T.Zero;
        if (Vector512.IsHardwareAccelerated && n >= Vector512<T>.Count)
        {
            var mv = Vector512.Create(m);
            Vector512<T> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default;
            for (; i + Vector512<T>.Count <= n; i += Vector512<T>.Count)
            {
                var c = Vector512.Load(x + i) - mv;
                var vv = Vector512.Load(v + i);
                a0 += vv;
                a1 += vv * c;
                var uv = Vector512.Load(u + i);
                a2 += uv * c;
                a6 += uv;
                a3 += Vector512.Load(ju + i) * vv;
                if (w != null)
                {
                    var wv = Vector512.Load(w + i);
                    a4 += wv;
                    a5 += wv * c;
                }
            }
            sv = Vector512.Sum(a0); svc = Vector512.Sum(a1); suc = Vector512.Sum(a2); sjv = Vector512.Sum(a3); sw = Vector512.Sum(a4); swc = Vector512.Sum(a5); su = Vector512.Sum(a6);
        }
        else if (Vector256.IsHardwareAccelerated && n >= Vector256<T>.Count)
        {
            var mv = Vector256.Create(m);
            Vector256<T> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default;
            for (; i + Vector256<T>.Count <= n; i += Vector256<T>.Count)
            {
                var c = Vector256.Load(x + i) - mv;
                var vv = Vector256.Load(v + i);
                a0 += vv;
                a1 += vv * c;
                var uv = Vector256.Load(u + i);
                a2 += uv * c;
                a6 += uv;
                a3 += Vector256.Load(ju + i) * vv;
                if (w != null)
                {
                    var wv = Vector256.Load(w + i);
                    a4 += wv;
                    a5 += wv * c;
                }
            }
            sv = Vector256.Sum(a0); svc = Vector256.Sum(a1); suc = Vector256.Sum(a2); sjv = Vector256.Sum(a3); sw = Vector256.Sum(a4); swc = Vector256.Sum(a5); su = Vector256.Sum(a6);
        }
        for (; i < n; i++)
        {
            T c = x[i] - m;
            sv += v[i]; svc += v[i] * c; suc += u[i] * c; sjv += ju[i] * v[i]; su += u[i];
            if (w != null) { sw += w[i]; swc += w[i] * c; }
        }
        sums[0] += double.CreateTruncating(sv); sums[1] += double.CreateTruncating(svc); sums[2] += double.CreateTruncating(suc);
        sums[3] += double.CreateTruncating(sjv); sums[4] += double.CreateTruncating(sw); sums[5] += double.CreateTruncating(swc);
        sums[6] += double.CreateTruncating(su);
    }

    /// <summary>y = kj·ju + kv·v + kw·w + kc·(x − m) + k0 over one segment; w may be null (zero).</summary>
    private static unsafe void TangentCombine<T>(T* x, T* ju, T* v, T* w, T* y, int n, T m, T kj, T kv, T kw, T kc, T k0) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            Vector512<T> mv = Vector512.Create(m), jv = Vector512.Create(kj), vv = Vector512.Create(kv), wv = Vector512.Create(kw), cv = Vector512.Create(kc), zv = Vector512.Create(k0);
            for (; i + Vector512<T>.Count <= n; i += Vector512<T>.Count)
            {
                var t = Vector512.Load(ju + i) * jv + Vector512.Load(v + i) * vv + (Vector512.Load(x + i) - mv) * cv + zv;
                if (w != null) t += Vector512.Load(w + i) * wv;
                t.Store(y + i);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            Vector256<T> mv = Vector256.Create(m), jv = Vector256.Create(kj), vv = Vector256.Create(kv), wv = Vector256.Create(kw), cv = Vector256.Create(kc), zv = Vector256.Create(k0);
            for (; i + Vector256<T>.Count <= n; i += Vector256<T>.Count)
            {
                var t = Vector256.Load(ju + i) * jv + Vector256.Load(v + i) * vv + (Vector256.Load(x + i) - mv) * cv + zv;
                if (w != null) t += Vector256.Load(w + i) * wv;
                t.Store(y + i);
            }
        }
        for (; i < n; i++)
        {
            T t = ju[i] * kj + v[i] * kv + (x[i] - m) * kc + k0;
            if (w != null) t += w[i] * kw;
            y[i] = t;
        }
    }

    /// <summary>
    /// y = x·scale[gi] + shift[gi] per group, in one pass (BatchNorm's affine step); with a second pair,
    /// y = x·scale[gi] + x2·scale2[gi] + shift[gi] (the tangent of a scale-shift, ẋ·γ + x·γ̇ + β̇, in one pass); with
    /// an addend z, + z (a residual connection); with <paramref name="relu"/>, max(·, 0) of the whole (BatchNorm, the
    /// residual add and the ReLU of a ResNet block's end in one pass instead of three). Empty x2 and scale2 mean no
    /// second pair, an empty z no addend.
    /// </summary>
    public static void ScaleShift<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> scale, ReadOnlySpan<T> shift, ReadOnlySpan<T> x2, ReadOnlySpan<T> scale2,
        Span<T> y, int a, int g, int b, ReadOnlySpan<T> z = default, bool relu = false) where T : unmanaged, IFloatingPointIeee754<T>
    {
        bool pair = !x2.IsEmpty, addend = !z.IsEmpty;
        unsafe
        {
            fixed (T* px = x) fixed (T* ps = scale) fixed (T* pt = shift) fixed (T* px2 = x2) fixed (T* ps2 = scale2) fixed (T* pz = z) fixed (T* py = y)
            {
                T* xs = px, ss = ps, ts = pt, x2s = px2, s2s = ps2, zs = pz, ys = py;
                Parallelism.ForChunks((long)a * g, Math.Max(1, 16384 / Math.Max(1, b)), (start, count) =>
                {
                    for (long row = start; row < start + count; row++)
                    {
                        int gi = (int)(row % g);
                        long o = row * b;
                        Affine(xs + o, ss[gi], pair ? x2s + o : null, pair ? s2s[gi] : T.Zero, ts[gi], addend ? zs + o : null, relu, ys + o, b);
                    }
                });
            }
        }
    }

    /// <summary>y = x·s (+ x2·s2) + t (+ z), then max(·, 0) when asked, over one segment in a single vectorized pass.</summary>
    private static unsafe void Affine<T>(T* x, T s, T* x2, T s2, T t, T* z, bool relu, T* y, int n) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            Vector512<T> sv = Vector512.Create(s), s2v = Vector512.Create(s2), tv = Vector512.Create(t);
            for (; i + Vector512<T>.Count <= n; i += Vector512<T>.Count)
            {
                var v = Vector512.Load(x + i) * sv;
                v = x2 != null ? v + Vector512.Load(x2 + i) * s2v + tv : v + tv;
                if (z != null) v += Vector512.Load(z + i);
                if (relu) v = Vector512.Max(v, Vector512<T>.Zero);
                v.Store(y + i);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            Vector256<T> sv = Vector256.Create(s), s2v = Vector256.Create(s2), tv = Vector256.Create(t);
            for (; i + Vector256<T>.Count <= n; i += Vector256<T>.Count)
            {
                var v = Vector256.Load(x + i) * sv;
                v = x2 != null ? v + Vector256.Load(x2 + i) * s2v + tv : v + tv;
                if (z != null) v += Vector256.Load(z + i);
                if (relu) v = Vector256.Max(v, Vector256<T>.Zero);
                v.Store(y + i);
            }
        }
        for (; i < n; i++)
        {
            T v = x2 != null ? x[i] * s + x2[i] * s2 + t : x[i] * s + t;
            if (z != null) v += z[i];
            y[i] = relu && v < T.Zero ? T.Zero : v; // NaN passes, as Vector512.Max lets it
        }
    }

    /// <summary>Per-group mean of the elementwise product a·b (one read pass over both).</summary>
    public static void GroupMeanProduct<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> y, Span<double> result, int a, int g, int b) where T : unmanaged, IFloatingPointIeee754<T>
    {
        unsafe
        {
            fixed (T* px = x) fixed (T* py = y)
            {
                T* xs = px, ys = py;
                var (_, sums) = GroupSums(a, g, b, 1, (long o, ref RunningMoments _, Span<double> s) =>
                    s[0] += double.CreateTruncating(TensorPrimitives.Dot(new ReadOnlySpan<T>(xs + o, b), new ReadOnlySpan<T>(ys + o, b))));
                for (int gi = 0; gi < g; gi++) result[gi] = sums[gi] / ((double)a * b);
            }
        }
    }

    /// <summary>
    /// Per-group covariance mean((x − mean x)·(y − mean y)) = mean(x·(y − mean y)) in one read pass over both, each
    /// segment of y centered on its own mean (as in <see cref="Jacobian{T}"/>), so nothing cancels when the means are large.
    /// </summary>
    public static void GroupCovariance<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> y, Span<double> result, int a, int g, int b) where T : unmanaged, IFloatingPointIeee754<T>
    {
        unsafe
        {
            fixed (T* px = x) fixed (T* py = y)
            {
                var (_, _, sumXC) = CenteredProductSums(px, py, a, g, b);
                for (int gi = 0; gi < g; gi++) result[gi] = sumXC[gi] / ((double)a * b);
            }
        }
    }

    /// <summary>
    /// BatchNorm's running statistics: mean' = (1 − m)·mean + m·μ and var' = (1 − m)·var + m·σ²·bessel, the batch's
    /// statistics rounded to T first and each product and the sum rounded apart (LinearCombination's order).
    /// </summary>
    public static void UpdateRunningStatistics<T>(ReadOnlySpan<T> runningMean, ReadOnlySpan<T> runningVariance, ReadOnlySpan<double> mean,
        ReadOnlySpan<double> variance, Span<T> newMean, Span<T> newVariance, double momentum, double bessel) where T : unmanaged, IFloatingPointIeee754<T>
    {
        T keep = T.CreateTruncating(1 - momentum), take = T.CreateTruncating(momentum);
        for (int i = 0; i < runningMean.Length; i++)
        {
            newMean[i] = keep * runningMean[i] + take * T.CreateTruncating(mean[i]);
            newVariance[i] = keep * runningVariance[i] + take * T.CreateTruncating(variance[i] * bessel);
        }
    }

    /// <summary>
    /// BatchNorm's forward coefficients per group from γ, β and the moments: result [2·G] holds s = γ·r, then t = β − μ·s
    /// (see <see cref="NormalizationCoefficients"/>), each rounded once to T.
    /// </summary>
    public static void ScaleShiftCoefficients<T>(ReadOnlySpan<T> gamma, ReadOnlySpan<T> beta, ReadOnlySpan<double> mean, ReadOnlySpan<double> variance,
        Span<T> result, double epsilon) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int g = gamma.Length;
        for (int gi = 0; gi < g; gi++)
        {
            double s = NormalizationCoefficients.Scale(double.CreateTruncating(gamma[gi]), variance[gi], epsilon);
            result[gi] = T.CreateTruncating(s);
            result[g + gi] = T.CreateTruncating(NormalizationCoefficients.Shift(double.CreateTruncating(beta[gi]), mean[gi], s));
        }
    }

    /// <summary>
    /// BatchNorm's backward statistics and coefficients (see <see cref="NormalizationCoefficients.Backward"/>) per
    /// group of x and its output's cotangent u, both [A, G, B], with the moments of x given: result [5·G] holds the rows
    /// Σu, Σu·x̂, a, k and c. Σu and Σu·(x − μ) come from one read pass over u and x (as in <see cref="GroupCovariance{T}"/>).
    /// </summary>
    public static void ScaleShiftBackward<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> u, ReadOnlySpan<T> gamma, ReadOnlySpan<double> mean,
        ReadOnlySpan<double> variance, Span<T> result, int a, int g, int b, double epsilon) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var (sumU, sumUC) = CenteredSums(u, x, mean, a, g, b);
        double n = (double)a * b;
        for (int gi = 0; gi < g; gi++)
        {
            double sumUXhat = sumUC[gi] * NormalizationCoefficients.Rstd(variance[gi], epsilon);
            var c = NormalizationCoefficients.Backward(double.CreateTruncating(gamma[gi]), mean[gi], variance[gi], epsilon, sumU[gi] / n, sumUXhat / n);
            result[gi] = T.CreateTruncating(sumU[gi]);
            result[g + gi] = T.CreateTruncating(sumUXhat);
            result[2 * g + gi] = T.CreateTruncating(c.A);
            result[3 * g + gi] = T.CreateTruncating(c.K);
            result[4 * g + gi] = T.CreateTruncating(c.C);
        }
    }

    /// <summary>
    /// The forward's coefficients and their tangents per group (see <see cref="NormalizationCoefficients.Tangent"/>):
    /// result [4·G] holds the rows s, t, ṡ, ṫ. Σẋ and Σẋ·(x − μ) come from one read pass over ẋ and x; an empty ẋ,
    /// γ̇ or β̇ is zero.
    /// </summary>
    public static void ScaleShiftTangent<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> xDot, ReadOnlySpan<T> gamma, ReadOnlySpan<T> beta, ReadOnlySpan<T> gammaDot,
        ReadOnlySpan<T> betaDot, ReadOnlySpan<double> mean, ReadOnlySpan<double> variance, Span<T> result, int a, int g, int b, double epsilon)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var (sumXDot, sumXDotC) = CenteredSums(xDot, x, mean, a, g, b);
        double n = (double)a * b;
        for (int gi = 0; gi < g; gi++)
        {
            double r = NormalizationCoefficients.Rstd(variance[gi], epsilon);
            var c = NormalizationCoefficients.Tangent(double.CreateTruncating(gamma[gi]), double.CreateTruncating(beta[gi]), At(gammaDot, gi), At(betaDot, gi),
                mean[gi], variance[gi], epsilon, sumXDot[gi] / n, sumXDotC[gi] * r / n);
            result[gi] = T.CreateTruncating(c.S);
            result[g + gi] = T.CreateTruncating(c.T);
            result[2 * g + gi] = T.CreateTruncating(c.SDot);
            result[3 * g + gi] = T.CreateTruncating(c.TDot);
        }
    }

    /// <summary>
    /// The tangents of <see cref="ScaleShiftBackward{T}"/>'s rows along (ẋ, γ̇, u̇) (see
    /// <see cref="NormalizationCoefficients.BackwardTangent"/>): result [5·G]. The seven sums (of u, ẋ and u̇, each against
    /// x − μ too, and of u·ẋ) take one read pass over the four arrays; an empty ẋ, γ̇ or u̇ is zero.
    /// </summary>
    public static void ScaleShiftBackwardTangent<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> u, ReadOnlySpan<T> gamma, ReadOnlySpan<T> xDot, ReadOnlySpan<T> gammaDot,
        ReadOnlySpan<T> uDot, ReadOnlySpan<double> mean, ReadOnlySpan<double> variance, Span<T> result, int a, int g, int b, double epsilon)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        double[] sums;
        unsafe
        {
            // A zero tangent reads as x's own memory with its sums discarded: one kernel, one pass over all four.
            fixed (T* px = x) fixed (T* pu = u) fixed (T* pxd = xDot.IsEmpty ? x : xDot) fixed (T* pud = uDot.IsEmpty ? x : uDot)
            {
                T* xs = px, us = pu, xds = pxd, uds = pud;
                var centers = new T[g];
                for (int gi = 0; gi < g; gi++) centers[gi] = T.CreateTruncating(mean[gi]);
                sums = GroupSums(a, g, b, 7, (long o, ref RunningMoments _, Span<double> s) => TangentSums(us + o, xs + o, xds + o, uds + o, b, centers[(int)(o / b % g)], s)).Sums;
            }
        }
        if (xDot.IsEmpty) for (int gi = 0; gi < g; gi++) { sums[7 * gi + 2] = 0; sums[7 * gi + 3] = 0; sums[7 * gi + 6] = 0; }
        if (uDot.IsEmpty) for (int gi = 0; gi < g; gi++) { sums[7 * gi + 4] = 0; sums[7 * gi + 5] = 0; }
        double n = (double)a * b;
        for (int gi = 0; gi < g; gi++)
        {
            double r = NormalizationCoefficients.Rstd(variance[gi], epsilon);
            var q = sums.AsSpan(7 * gi, 7);
            var c = NormalizationCoefficients.BackwardTangent(double.CreateTruncating(gamma[gi]), At(gammaDot, gi), mean[gi], variance[gi], epsilon, n,
                q[0] / n, q[1] * r / n, q[2] / n, q[3] * r / n, q[4] / n, q[5] * r / n, q[6] / n);
            result[gi] = T.CreateTruncating(c.Sum);
            result[g + gi] = T.CreateTruncating(c.Product);
            result[2 * g + gi] = T.CreateTruncating(c.A);
            result[3 * g + gi] = T.CreateTruncating(c.K);
            result[4 * g + gi] = T.CreateTruncating(c.C);
        }
    }

    private static double At<T>(ReadOnlySpan<T> values, int i) where T : unmanaged, IFloatingPointIeee754<T> =>
        values.IsEmpty ? 0 : double.CreateTruncating(values[i]);

    /// <summary>Per group Σu and Σu·(x − μ) about the given means, in one read pass (zeros for an empty u).</summary>
    private static (double[] SumU, double[] SumUC) CenteredSums<T>(ReadOnlySpan<T> u, ReadOnlySpan<T> x, ReadOnlySpan<double> mean, int a, int g, int b)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (u.IsEmpty) return (new double[g], new double[g]);
        unsafe
        {
            fixed (T* px = x) fixed (T* pu = u)
            {
                var (_, sumU, sumUC) = CenteredProductSums(pu, px, a, g, b, mean);
                return (sumU, sumUC);
            }
        }
    }

    /// <summary>Per-group mean and biased variance (one pass over memory).</summary>
    public static void Moments<T>(ReadOnlySpan<T> x, Span<double> mean, Span<double> variance, int a, int g, int b) where T : unmanaged, IFloatingPointIeee754<T>
    {
        unsafe
        {
            fixed (T* px = x)
            {
                var moments = GroupMoments(px, a, g, b);
                for (int gi = 0; gi < g; gi++)
                {
                    mean[gi] = moments[gi].Mean;
                    variance[gi] = moments[gi].Variance;
                }
            }
        }
    }

    /// <summary>
    /// One read pass over u and x: each group's moments of x, Σu and Σu·(x − μ). Each segment of x is centered on its own
    /// mean while it sits in L1, giving Σu·(x − m̃ₛ) and m̃ₛ·Σuₛ; then Σu·(x − μ) = Σₛ [Σu·(x − m̃ₛ) + m̃ₛ·Σuₛ] − μ·Σu in
    /// float64, so nothing cancels when the means are large.
    /// </summary>
    private static unsafe (RunningMoments[] Moments, double[] SumU, double[] SumUC) CenteredProductSums<T>(T* us, T* xs, int a, int g, int b)
        where T : unmanaged, IFloatingPointIeee754<T> => CenteredProductSums(us, xs, a, g, b, default);

    /// <summary><see cref="CenteredProductSums{T}(T*, T*, int, int, int)"/> centered on the given means of x (empty: the pass's own).</summary>
    private static unsafe (RunningMoments[] Moments, double[] SumU, double[] SumUC) CenteredProductSums<T>(T* us, T* xs, int a, int g, int b, ReadOnlySpan<double> centers)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var (moments, sums) = GroupSums(a, g, b, 3, (long o, ref RunningMoments moment, Span<double> s) =>
        {
            T center = moment.AddSegment(xs + o, b);
            var (su, suc) = SumAndCenteredDot(us + o, xs + o, b, center);
            s[0] += double.CreateTruncating(su);
            s[1] += double.CreateTruncating(suc);
            s[2] += double.CreateTruncating(center) * double.CreateTruncating(su);
        });
        var sumU = new double[g];
        var sumUC = new double[g];
        for (int gi = 0; gi < g; gi++)
        {
            sumU[gi] = sums[3 * gi];
            double mu = centers.IsEmpty ? moments[gi].Mean : centers[gi];
            sumUC[gi] = sums[3 * gi + 1] + (sums[3 * gi + 2] - mu * sums[3 * gi]);
        }
        return (moments, sumU, sumUC);
    }

    /// <summary>Each group's moments (see <see cref="RunningMoments"/>) in one pass over memory.</summary>
    private static unsafe RunningMoments[] GroupMoments<T>(T* xs, int a, int g, int b) where T : unmanaged, IFloatingPointIeee754<T> =>
        GroupSums(a, g, b, 0, (long o, ref RunningMoments moments, Span<double> _) => moments.AddSegment(xs + o, b)).Moments;

    /// <summary>What a statistics pass does with one row (a segment of B values at <paramref name="offset"/>): adds to its group's moments and sums.</summary>
    private delegate void RowSums(long offset, ref RunningMoments moments, Span<double> sums);

    /// <summary>Elements a statistics chunk covers: whole rows, some 128 KiB of float32.</summary>
    private const long ChunkElements = 32768;

    /// <summary>
    /// One read pass over the [A, G, B] rows in memory order, calling <paramref name="row"/> for each with its group's
    /// moments and <paramref name="k"/> sums. Chunks are whole images (or, when one image is larger than a chunk,
    /// blocks of its groups), a fixed size whatever the thread count; each chunk accumulates into its own per-group
    /// state, and the states merge in chunk order (moments by <see cref="RunningMoments.Merge(in RunningMoments)"/>, sums added).
    /// </summary>
    private static (RunningMoments[] Moments, double[] Sums) GroupSums(int a, int g, int b, int k, RowSums row)
    {
        long image = (long)g * b;
        int imagesPerChunk = image >= ChunkElements ? 1 : (int)Math.Clamp((ChunkElements + image - 1) / Math.Max(1, image), 1, Math.Max(1, a));
        int groupsPerChunk = image >= ChunkElements ? (int)Math.Clamp(ChunkElements / Math.Max(1, b), 1, g) : g;
        int imageChunks = (a + imagesPerChunk - 1) / imagesPerChunk, groupChunks = (g + groupsPerChunk - 1) / groupsPerChunk;
        var partialMoments = new RunningMoments[imageChunks * g];
        var partialSums = new double[imageChunks * g * k];
        Parallelism.For(imageChunks * groupChunks, c =>
        {
            int ic = c / groupChunks, g0 = c % groupChunks * groupsPerChunk, g1 = Math.Min(g, g0 + groupsPerChunk);
            for (int ai = ic * imagesPerChunk, a1 = Math.Min(a, ai + imagesPerChunk); ai < a1; ai++)
                for (int gi = g0; gi < g1; gi++)
                {
                    int slot = ic * g + gi;
                    row(((long)ai * g + gi) * b, ref partialMoments[slot], partialSums.AsSpan(slot * k, k));
                }
        });
        var moments = new RunningMoments[g];
        var sums = new double[g * k];
        for (int ic = 0; ic < imageChunks; ic++)
            for (int gi = 0; gi < g; gi++)
            {
                int slot = ic * g + gi;
                moments[gi].Merge(partialMoments[slot]);
                for (int j = 0; j < k; j++) sums[gi * k + j] += partialSums[slot * k + j];
            }
        return (moments, sums);
    }

    /// <summary>The write pass: <paramref name="row"/>(offset, group) for every row of the [A, G, B] view, in parallel chunks of rows.</summary>
    private static void ForRows(int a, int g, int b, Action<long, int> row) =>
        Parallelism.ForChunks((long)a * g, Math.Max(1, 16384 / Math.Max(1, b)), (start, count) =>
        {
            for (long r = start; r < start + count; r++) row(r * b, (int)(r % g));
        });

    /// <summary>
    /// A group's count, mean and centered sum of squares, built segment by segment: each segment of B contiguous
    /// values is summed, then its squares are taken about its own mean while it is still in L1 (two passes over the
    /// segment, one over memory, and nothing cancels), and segments (and chunks of them) merge by Chan, Golub and
    /// LeVeque's pairwise update (1979): δ = m̄ₛ − m̄, M₂ += M₂ₛ + δ²·n·nₛ/(n + nₛ).
    /// </summary>
    private struct RunningMoments
    {
        private double count, mean, m2;

        public readonly double Mean => mean;

        public readonly double Variance => m2 / count;

        public readonly double Rstd(double epsilon) => 1 / Math.Sqrt(m2 / count + epsilon);

        /// <summary>Adds one segment; returns the center its squares were taken about (its mean, rounded to T).</summary>
        public unsafe T AddSegment<T>(T* x, int n) where T : unmanaged, IFloatingPointIeee754<T>
        {
            double segmentMean = double.CreateTruncating(TensorPrimitives.Sum(new ReadOnlySpan<T>(x, n))) / n;
            T center = T.CreateTruncating(segmentMean);
            // Σ(x − m̃)² = Σ(x − m̄)² + n·(m̄ − m̃)²: remove the rounding of the center.
            double offset = segmentMean - double.CreateTruncating(center);
            double segmentM2 = Math.Max(0, double.CreateTruncating(CenteredSquares(x, n, center)) - n * offset * offset);
            Merge(n, segmentMean, segmentM2);
            return center;
        }

        /// <summary>Adds the elements another accumulator has seen.</summary>
        public void Merge(in RunningMoments other) => Merge(other.count, other.mean, other.m2);

        private void Merge(double n, double otherMean, double otherM2)
        {
            if (n == 0) return;
            if (count == 0) { count = n; mean = otherMean; m2 = otherM2; return; }
            double total = count + n, delta = otherMean - mean;
            mean += delta * n / total;
            m2 += otherM2 + delta * delta * count * n / total;
            count = total;
        }
    }

    /// <summary>Σ (x − m)² over one segment in a single vectorized pass (no staging buffer).</summary>
    private static unsafe T CenteredSquares<T>(T* x, int n, T m) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = 0;
        T total = T.Zero;
        if (Vector512.IsHardwareAccelerated && n >= Vector512<T>.Count)
        {
            var mv = Vector512.Create(m);
            Vector512<T> acc0 = Vector512<T>.Zero, acc1 = Vector512<T>.Zero;
            int w = Vector512<T>.Count;
            for (; i + 2 * w <= n; i += 2 * w)
            {
                var d0 = Vector512.Load(x + i) - mv;
                var d1 = Vector512.Load(x + i + w) - mv;
                acc0 += d0 * d0;
                acc1 += d1 * d1;
            }
            for (; i + w <= n; i += w)
            {
                var d = Vector512.Load(x + i) - mv;
                acc0 += d * d;
            }
            total = Vector512.Sum(acc0 + acc1);
        }
        else if (Vector256.IsHardwareAccelerated && n >= Vector256<T>.Count)
        {
            var mv = Vector256.Create(m);
            Vector256<T> acc = Vector256<T>.Zero;
            for (; i + Vector256<T>.Count <= n; i += Vector256<T>.Count)
            {
                var d = Vector256.Load(x + i) - mv;
                acc += d * d;
            }
            total = Vector256.Sum(acc);
        }
        for (; i < n; i++) { var d = x[i] - m; total += d * d; }
        return total;
    }

    /// <summary>
    /// Over one segment, added to <paramref name="sums"/>: Σu, Σu·(x − m), Σẋ, Σẋ·(x − m), Σu̇, Σu̇·(x − m) and Σu·ẋ, in
    /// a single vectorized pass (T accumulators per segment, float64 across segments, as the other statistics).
    /// </summary>
    private static unsafe void TangentSums<T>(T* u, T* x, T* xDot, T* uDot, int n, T m, Span<double> sums) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = 0;
        T su = T.Zero, sux = T.Zero, sxd = T.Zero, sxdx = T.Zero, sud = T.Zero, sudx = T.Zero, suxd = T.Zero;
        if (Vector256.IsHardwareAccelerated)
        {
            var mv = Vector256.Create(m);
            Vector256<T> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default;
            for (; i + Vector256<T>.Count <= n; i += Vector256<T>.Count)
            {
                var c = Vector256.Load(x + i) - mv;
                var uv = Vector256.Load(u + i);
                var xdv = Vector256.Load(xDot + i);
                var udv = Vector256.Load(uDot + i);
                a0 += uv; a1 += uv * c;
                a2 += xdv; a3 += xdv * c;
                a4 += udv; a5 += udv * c;
                a6 += uv * xdv;
            }
            su = Vector256.Sum(a0); sux = Vector256.Sum(a1); sxd = Vector256.Sum(a2); sxdx = Vector256.Sum(a3);
            sud = Vector256.Sum(a4); sudx = Vector256.Sum(a5); suxd = Vector256.Sum(a6);
        }
        for (; i < n; i++)
        {
            T c = x[i] - m;
            su += u[i]; sux += u[i] * c;
            sxd += xDot[i]; sxdx += xDot[i] * c;
            sud += uDot[i]; sudx += uDot[i] * c;
            suxd += u[i] * xDot[i];
        }
        sums[0] += double.CreateTruncating(su); sums[1] += double.CreateTruncating(sux);
        sums[2] += double.CreateTruncating(sxd); sums[3] += double.CreateTruncating(sxdx);
        sums[4] += double.CreateTruncating(sud); sums[5] += double.CreateTruncating(sudx);
        sums[6] += double.CreateTruncating(suxd);
    }

    /// <summary>(Σ u, Σ u·(x − m)) over one segment in a single vectorized pass.</summary>
    private static unsafe (T SumU, T SumUC) SumAndCenteredDot<T>(T* u, T* x, int n, T m) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = 0;
        T su = T.Zero, suc = T.Zero;
        if (Vector512.IsHardwareAccelerated)
        {
            var mv = Vector512.Create(m);
            Vector512<T> a0 = Vector512<T>.Zero, a1 = Vector512<T>.Zero;
            for (; i + Vector512<T>.Count <= n; i += Vector512<T>.Count)
            {
                var uv = Vector512.Load(u + i);
                a0 += uv;
                a1 += uv * (Vector512.Load(x + i) - mv);
            }
            su = Vector512.Sum(a0);
            suc = Vector512.Sum(a1);
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            var mv = Vector256.Create(m);
            Vector256<T> a0 = Vector256<T>.Zero, a1 = Vector256<T>.Zero;
            for (; i + Vector256<T>.Count <= n; i += Vector256<T>.Count)
            {
                var uv = Vector256.Load(u + i);
                a0 += uv;
                a1 += uv * (Vector256.Load(x + i) - mv);
            }
            su = Vector256.Sum(a0);
            suc = Vector256.Sum(a1);
        }
        for (; i < n; i++) { su += u[i]; suc += u[i] * (x[i] - m); }
        return (su, suc);
    }

    /// <summary>y = u·r + (x − m)·k + shift over one segment in a single vectorized pass.</summary>
    private static unsafe void Combine<T>(T* u, T* x, T* y, int n, T m, T r, T k, T shift) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            Vector512<T> mv = Vector512.Create(m), rv = Vector512.Create(r), kv = Vector512.Create(k), sv = Vector512.Create(shift);
            for (; i + Vector512<T>.Count <= n; i += Vector512<T>.Count)
                (Vector512.Load(u + i) * rv + (Vector512.Load(x + i) - mv) * kv + sv).Store(y + i);
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            Vector256<T> mv = Vector256.Create(m), rv = Vector256.Create(r), kv = Vector256.Create(k), sv = Vector256.Create(shift);
            for (; i + Vector256<T>.Count <= n; i += Vector256<T>.Count)
                (Vector256.Load(u + i) * rv + (Vector256.Load(x + i) - mv) * kv + sv).Store(y + i);
        }
        for (; i < n; i++) y[i] = u[i] * r + (x[i] - m) * k + shift;
    }

    /// <summary>y = (x − m)·r over one segment in a single vectorized pass.</summary>
    private static unsafe void CenterAndScale<T>(T* x, T* y, int n, T m, T r) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var mv = Vector512.Create(m);
            var rv = Vector512.Create(r);
            for (; i + Vector512<T>.Count <= n; i += Vector512<T>.Count) ((Vector512.Load(x + i) - mv) * rv).Store(y + i);
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            var mv = Vector256.Create(m);
            var rv = Vector256.Create(r);
            for (; i + Vector256<T>.Count <= n; i += Vector256<T>.Count) ((Vector256.Load(x + i) - mv) * rv).Store(y + i);
        }
        for (; i < n; i++) y[i] = (x[i] - m) * r;
    }
}
