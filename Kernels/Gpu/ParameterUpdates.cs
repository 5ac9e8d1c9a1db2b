using System.Numerics;
using ILGPU;
using Rule = Curvature.Kernels.UpdateRules;

namespace Curvature.Kernels.Gpu;

/// <summary>
/// The optimizers' whole per-parameter updates in one launch each (the rules of <see cref="UpdateRules"/>,
/// as <see cref="Cpu.ParameterUpdates"/> runs them): grid-stride over the elements.
/// </summary>
public static class ParameterUpdates
{
    /// <summary>Adam: m', v' and w' (or the direction) from w, g, m, v.</summary>
    public static void Adam<T, K>(ArrayView<T> w, ArrayView<T> g, ArrayView<T> m, ArrayView<T> v, ArrayView<T> mNext, ArrayView<T> vNext,
        ArrayView<T> result, AdamStep step) where T : unmanaged, IFloatingPointIeee754<T> where K : struct, IScalarKind<T>
    {
        for (int i = KernelCache.First; i < w.IntLength; i += KernelCache.Step)
        {
            var e = Rule.Adam<T, K>(w[i], g[i], m[i], v[i], step);
            mNext[i] = e.M;
            vNext[i] = e.V;
            result[i] = e.Result;
        }
    }

    /// <summary>Heavy-ball momentum: b' and w' from w, g, b, rounded op by op in T.</summary>
    public static void Momentum<T, K>(ArrayView<T> w, ArrayView<T> g, ArrayView<T> b, ArrayView<T> bNext, ArrayView<T> wNext, MomentumStep step)
        where T : unmanaged, IFloatingPointIeee754<T> where K : struct, IScalarKind<T>
    {
        K k = default;
        T mu = k.From(step.Momentum), l2 = k.From(step.L2), eta = k.From(step.LearningRate);
        bool decay = step.L2 != 0, nesterov = step.Nesterov != 0;
        for (int i = KernelCache.First; i < w.IntLength; i += KernelCache.Step)
        {
            T bi = Rule.MomentumBuffer(b[i], g[i], w[i], mu, l2, decay);
            bNext[i] = bi;
            wNext[i] = Rule.MomentumWeights(w[i], g[i], bi, mu, l2, eta, decay, nesterov);
        }
    }
}
