using System.Numerics;
using System.Runtime.Intrinsics;
using Rule = Curvature.Kernels.UpdateRules;

namespace Curvature.Kernels.Cpu;

/// <summary>
/// The optimizers' whole per-parameter updates in one pass over memory each (the rules of
/// <see cref="UpdateRules"/>): every element is computed on its own, so the result does not depend on
/// how the array is cut among threads.
/// </summary>
public static class ParameterUpdates
{
    /// <summary>Adam: m', v' and w' (or the direction) from w, g, m, v (<see cref="Rule.Adam{T, K}"/>; K names T's conversions).</summary>
    public static unsafe void Adam<T, K>(ReadOnlySpan<T> w, ReadOnlySpan<T> g, ReadOnlySpan<T> m, ReadOnlySpan<T> v,
        Span<T> mNext, Span<T> vNext, Span<T> result, AdamStep step) where T : unmanaged, IFloatingPointIeee754<T> where K : struct, IScalarKind<T>
    {
        fixed (T* pw = w) fixed (T* pg = g) fixed (T* pm = m) fixed (T* pv = v) fixed (T* pm2 = mNext) fixed (T* pv2 = vNext) fixed (T* pr = result)
        {
            T* ws = pw, gs = pg, ms = pm, vs = pv, ms2 = pm2, vs2 = pv2, rs = pr;
            Parallelism.ForChunks(w.Length, 1 << 14, (start, count) =>
            {
                long i = start, end = start + count;
                if (Vector256.IsHardwareAccelerated && typeof(T) == typeof(float))
                    i = AdamFloats((float*)ws, (float*)gs, (float*)ms, (float*)vs, (float*)ms2, (float*)vs2, (float*)rs, i, end, step);
                else if (Vector256.IsHardwareAccelerated && typeof(T) == typeof(double))
                    i = AdamDoubles((double*)ws, (double*)gs, (double*)ms, (double*)vs, (double*)ms2, (double*)vs2, (double*)rs, i, end, step);
                for (; i < end; i++)
                {
                    var e = Rule.Adam<T, K>(ws[i], gs[i], ms[i], vs[i], step);
                    ms2[i] = e.M;
                    vs2[i] = e.V;
                    rs[i] = e.Result;
                }
            });
        }
    }

    /// <summary>
    /// The rule of <see cref="Rule.Adam{T, K}"/> four lanes at a time, each operation the scalar one in the same order
    /// (IEEE arithmetic lane by lane, no fused multiply-adds), so the bits are the scalar rule's: the tests hold them equal.
    /// </summary>
    private readonly struct AdamLanes(AdamStep s)
    {
        private readonly Vector256<double> beta1 = Vector256.Create(s.Beta1), beta2 = Vector256.Create(s.Beta2), rest1 = Vector256.Create(1 - s.Beta1),
            rest2 = Vector256.Create(1 - s.Beta2), l2 = Vector256.Create(s.L2), c1 = Vector256.Create(s.Correction1), c2 = Vector256.Create(s.Correction2),
            epsilon = Vector256.Create(s.Epsilon), keep = Vector256.Create(s.Keep), eta = Vector256.Create(s.LearningRate);
        private readonly bool decay = s.L2 != 0, apply = s.Apply != 0;

        public Vector256<double> Gradient(Vector256<double> g, Vector256<double> w) => decay ? g + l2 * w : g;
        public Vector256<double> FirstMoment(Vector256<double> m, Vector256<double> g) => beta1 * m + rest1 * g;
        public Vector256<double> SecondMoment(Vector256<double> v, Vector256<double> g) => beta2 * v + rest2 * g * g;
        public Vector256<double> Result(Vector256<double> w, Vector256<double> m, Vector256<double> v)
        {
            var d = m * c1 / (Vector256.Sqrt(v * c2) + epsilon);
            return apply ? keep * w - eta * d : d;
        }
    }

    private static unsafe long AdamFloats(float* w, float* g, float* m, float* v, float* mNext, float* vNext, float* result, long i, long end, AdamStep step)
    {
        var lanes = new AdamLanes(step);
        for (; i + Vector256<float>.Count <= end; i += Vector256<float>.Count)
        {
            var (wLo, wHi) = Vector256.Widen(Vector256.Load(w + i));
            var (gLo, gHi) = Vector256.Widen(Vector256.Load(g + i));
            var (mLo, mHi) = Vector256.Widen(Vector256.Load(m + i));
            var (vLo, vHi) = Vector256.Widen(Vector256.Load(v + i));
            gLo = lanes.Gradient(gLo, wLo);
            gHi = lanes.Gradient(gHi, wHi);
            // The moments rounded to float32, then read back: the direction comes from what is stored.
            var mRounded = Vector256.Narrow(lanes.FirstMoment(mLo, gLo), lanes.FirstMoment(mHi, gHi));
            var vRounded = Vector256.Narrow(lanes.SecondMoment(vLo, gLo), lanes.SecondMoment(vHi, gHi));
            mRounded.Store(mNext + i);
            vRounded.Store(vNext + i);
            (mLo, mHi) = Vector256.Widen(mRounded);
            (vLo, vHi) = Vector256.Widen(vRounded);
            Vector256.Narrow(lanes.Result(wLo, mLo, vLo), lanes.Result(wHi, mHi, vHi)).Store(result + i);
        }
        return i;
    }

    private static unsafe long AdamDoubles(double* w, double* g, double* m, double* v, double* mNext, double* vNext, double* result, long i, long end, AdamStep step)
    {
        var lanes = new AdamLanes(step);
        for (; i + Vector256<double>.Count <= end; i += Vector256<double>.Count)
        {
            var wv = Vector256.Load(w + i);
            var gv = lanes.Gradient(Vector256.Load(g + i), wv);
            var mv = lanes.FirstMoment(Vector256.Load(m + i), gv);
            var vv = lanes.SecondMoment(Vector256.Load(v + i), gv);
            mv.Store(mNext + i);
            vv.Store(vNext + i);
            lanes.Result(wv, mv, vv).Store(result + i);
        }
        return i;
    }

    /// <summary>Heavy-ball momentum: b' and w' from w, g, b, rounded op by op in T (<see cref="Rule.MomentumBuffer{T}"/>).</summary>
    public static unsafe void Momentum<T>(ReadOnlySpan<T> w, ReadOnlySpan<T> g, ReadOnlySpan<T> b, Span<T> bNext, Span<T> wNext, MomentumStep step)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T mu = T.CreateTruncating(step.Momentum), l2 = T.CreateTruncating(step.L2), eta = T.CreateTruncating(step.LearningRate);
        bool decay = step.L2 != 0, nesterov = step.Nesterov != 0;
        fixed (T* pw = w) fixed (T* pg = g) fixed (T* pb = b) fixed (T* pb2 = bNext) fixed (T* pw2 = wNext)
        {
            T* ws = pw, gs = pg, bs = pb, bs2 = pb2, ws2 = pw2;
            Parallelism.ForChunks(w.Length, 1 << 15, (start, count) =>
            {
                long i = start, end = start + count;
                if (Vector256.IsHardwareAccelerated && Vector256<T>.IsSupported)
                {
                    // The scalar rule's operations in its order, lane by lane: the same bits.
                    Vector256<T> muV = Vector256.Create(mu), l2V = Vector256.Create(l2), etaV = Vector256.Create(eta), minusEta = Vector256.Create(-eta);
                    for (; i + Vector256<T>.Count <= end; i += Vector256<T>.Count)
                    {
                        Vector256<T> wv = Vector256.Load(ws + i), gv = Vector256.Load(gs + i);
                        var decayed = decay ? gv + l2V * wv : gv;
                        var bv = muV * Vector256.Load(bs + i) + decayed;
                        bv.Store(bs2 + i);
                        (nesterov ? wv - (decayed + bv * muV) * etaV : wv + minusEta * bv).Store(ws2 + i);
                    }
                }
                for (; i < end; i++)
                {
                    T bi = Rule.MomentumBuffer(bs[i], gs[i], ws[i], mu, l2, decay);
                    bs2[i] = bi;
                    ws2[i] = Rule.MomentumWeights(ws[i], gs[i], bi, mu, l2, eta, decay, nesterov);
                }
            });
        }
    }
}
