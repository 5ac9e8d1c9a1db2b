using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.Intrinsics;

namespace Curvature.Kernels.Cpu;

/// <summary>
/// Normalisation over groups: data viewed as [A, G, B], each of the G groups holding the A·B elements
/// x[a, g, b]. BatchNorm is A = N, G = C, B = H·W; LayerNorm is A = 1, G = rows, B = features. Per group:
/// μ = mean x, σ² = mean (x − μ)² (segments centred on their own means, so no cancellation), r = 1/√(σ² + ε), x̂ = (x − μ)·r; and the
/// Jacobian product J·u = r·(u − mean u − x̂·mean(u·x̂)), which is also the VJP (J is symmetric). Groups run in
/// parallel; sums are accumulated in float64 over float32 segments.
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
                Parallelism.For(g, gi =>
                {
                    var (mu, r) = Statistics(xs, a, g, b, gi, epsilon, out double biased);
                    if (mean is not null) mean[gi] = mu;
                    if (variance is not null) variance[gi] = biased;
                    T m = T.CreateTruncating(mu), rr = T.CreateTruncating(r);
                    for (int ai = 0; ai < a; ai++)
                    {
                        long o = ((long)ai * g + gi) * b;
                        CentreAndScale(xs + o, ys + o, b, m, rr);
                    }
                });
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
                Parallelism.For(g, gi =>
                {
                    // One read pass: each segment's moments (centred on its own mean while it sits in L1), Σu and
                    // Σu·(x − m̃ₛ); then Σu·(x − μ) = Σₛ [Σu·(x − m̃ₛ) + m̃ₛ·Σuₛ] − μ·Σu in float64.
                    var moments = new RunningMoments();
                    double sumU = 0, sumUC = 0, shifted = 0;
                    for (int ai = 0; ai < a; ai++)
                    {
                        long o = ((long)ai * g + gi) * b;
                        T centre = moments.AddSegment(xs + o, b);
                        var (su, suc) = SumAndCentredDot(us + o, xs + o, b, centre);
                        sumU += double.CreateTruncating(su);
                        sumUC += double.CreateTruncating(suc);
                        shifted += double.CreateTruncating(centre) * double.CreateTruncating(su);
                    }
                    double mean = moments.Mean, r = moments.Rstd(epsilon);
                    sumUC += shifted - mean * sumU;
                    T m = T.CreateTruncating(mean);
                    double count = (double)a * b;
                    double meanU = sumU / count, meanUXhat = r * sumUC / count;
                    T ru = T.CreateTruncating(r), shift = T.CreateTruncating(-r * meanU), k = T.CreateTruncating(-r * r * meanUXhat);
                    for (int ai = 0; ai < a; ai++)
                    {
                        long o = ((long)ai * g + gi) * b;
                        Combine(us + o, xs + o, ys + o, b, m, ru, k, shift);
                    }
                });
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
                Parallelism.For(g, gi =>
                {
                    // One read pass for the statistics and the sums, each segment centred on its own mean m̃ₛ:
                    // Σz·(x − μ) = Σₛ [Σz·(x − m̃ₛ) + m̃ₛ·Σzₛ] − μ·Σz for z = v, u, w (sums[6] holds Σu).
                    var moments = new RunningMoments();
                    Span<double> sums = stackalloc double[7];
                    double shiftV = 0, shiftU = 0, shiftW = 0;
                    for (int ai = 0; ai < a; ai++)
                    {
                        long o = ((long)ai * g + gi) * b;
                        T centre = moments.AddSegment(xs + o, b);
                        double c = double.CreateTruncating(centre), v0 = sums[0], u0 = sums[6], w0 = sums[4];
                        TangentSums(xs + o, us + o, js + o, vs + o, hasW ? ws + o : null, b, centre, sums);
                        shiftV += c * (sums[0] - v0);
                        shiftU += c * (sums[6] - u0);
                        shiftW += c * (sums[4] - w0);
                    }
                    double mean = moments.Mean, r = moments.Rstd(epsilon);
                    sums[1] += shiftV - mean * sums[0];
                    sums[2] += shiftU - mean * sums[6];
                    sums[5] += shiftW - mean * sums[4];
                    T m = T.CreateTruncating(mean);
                    double count = (double)a * b;
                    double sv = sums[0] / count, svc = sums[1] / count, suc = sums[2] / count, sjv = sums[3] / count, sw = sums[4] / count, swc = sums[5] / count;
                    double r2 = r * r, r3 = r2 * r;
                    T kj = T.CreateTruncating(-r2 * svc), kv = T.CreateTruncating(-r3 * suc), kw = T.CreateTruncating(r);
                    T kc = T.CreateTruncating(r3 * r2 * suc * svc - r2 * sjv - r3 * swc), k0 = T.CreateTruncating(r3 * suc * sv - r * sw);
                    for (int ai = 0; ai < a; ai++)
                    {
                        long o = ((long)ai * g + gi) * b;
                        TangentCombine(xs + o, js + o, vs + o, hasW ? ws + o : null, ys + o, b, m, kj, kv, kw, kc, k0);
                    }
                });
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

    /// <summary>y = x·s (+ x2·s2) + t (+ z), then max(·, 0) when asked, over one segment in a single vectorised pass.</summary>
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
        var r = new double[g];
        unsafe
        {
            fixed (T* px = x) fixed (T* py = y)
            {
                T* xs = px, ys = py;
                Parallelism.For(g, gi =>
                {
                    double sum = 0;
                    for (int ai = 0; ai < a; ai++)
                    {
                        long o = ((long)ai * g + gi) * b;
                        sum += double.CreateTruncating(TensorPrimitives.Dot(new ReadOnlySpan<T>(xs + o, b), new ReadOnlySpan<T>(ys + o, b)));
                    }
                    r[gi] = sum / ((double)a * b);
                });
            }
        }
        r.CopyTo(result);
    }

    /// <summary>Per-group mean and biased variance (one pass over memory).</summary>
    public static void Moments<T>(ReadOnlySpan<T> x, Span<double> mean, Span<double> variance, int a, int g, int b) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var means = new double[g];
        var variances = new double[g];
        unsafe
        {
            fixed (T* px = x)
            {
                T* xs = px;
                Parallelism.For(g, gi => (means[gi], _) = Statistics(xs, a, g, b, gi, 0, out variances[gi]));
            }
        }
        means.CopyTo(mean);
        variances.CopyTo(variance);
    }

    /// <summary>The mean, 1/√(σ² + ε) and biased σ² of group <paramref name="gi"/>, in one pass over memory (see <see cref="RunningMoments"/>).</summary>
    private static unsafe (double Mean, double R) Statistics<T>(T* xs, int a, int g, int b, int gi, double epsilon, out double variance)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var moments = new RunningMoments();
        for (int ai = 0; ai < a; ai++) moments.AddSegment(xs + ((long)ai * g + gi) * b, b);
        variance = moments.Variance;
        return (moments.Mean, moments.Rstd(epsilon));
    }

    /// <summary>
    /// A group's count, mean and centred sum of squares, built segment by segment: each segment of B contiguous
    /// values is summed, then its squares are taken about its own mean while it is still in L1 (two passes over the
    /// segment, one over memory, and nothing cancels), and segments merge by Chan, Golub and LeVeque's pairwise
    /// update (1979): δ = m̄ₛ − m̄, M₂ += M₂ₛ + δ²·n·nₛ/(n + nₛ).
    /// </summary>
    private struct RunningMoments
    {
        private double count, mean, m2;

        public readonly double Mean => mean;

        public readonly double Variance => m2 / count;

        public readonly double Rstd(double epsilon) => 1 / Math.Sqrt(m2 / count + epsilon);

        /// <summary>Adds one segment; returns the centre its squares were taken about (its mean, rounded to T).</summary>
        public unsafe T AddSegment<T>(T* x, int n) where T : unmanaged, IFloatingPointIeee754<T>
        {
            double segmentMean = double.CreateTruncating(TensorPrimitives.Sum(new ReadOnlySpan<T>(x, n))) / n;
            T centre = T.CreateTruncating(segmentMean);
            // Σ(x − m̃)² = Σ(x − m̄)² + n·(m̄ − m̃)²: remove the rounding of the centre.
            double offset = segmentMean - double.CreateTruncating(centre);
            double segmentM2 = Math.Max(0, double.CreateTruncating(CentredSquares(x, n, centre)) - n * offset * offset);
            if (count == 0) { count = n; mean = segmentMean; m2 = segmentM2; return centre; }
            double total = count + n, delta = segmentMean - mean;
            mean += delta * n / total;
            m2 += segmentM2 + delta * delta * count * n / total;
            count = total;
            return centre;
        }
    }

    /// <summary>Σ (x − m)² over one segment in a single vectorised pass (no staging buffer).</summary>
    private static unsafe T CentredSquares<T>(T* x, int n, T m) where T : unmanaged, IFloatingPointIeee754<T>
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

    /// <summary>(Σ u, Σ u·(x − m)) over one segment in a single vectorised pass.</summary>
    private static unsafe (T SumU, T SumUC) SumAndCentredDot<T>(T* u, T* x, int n, T m) where T : unmanaged, IFloatingPointIeee754<T>
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

    /// <summary>y = u·r + (x − m)·k + shift over one segment in a single vectorised pass.</summary>
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

    /// <summary>y = (x − m)·r over one segment in a single vectorised pass.</summary>
    private static unsafe void CentreAndScale<T>(T* x, T* y, int n, T m, T r) where T : unmanaged, IFloatingPointIeee754<T>
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
