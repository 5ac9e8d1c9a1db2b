using System.Numerics;
using ILGPU;

namespace Curvature.Kernels.Gpu;

/// <summary>
/// Reductions of x viewed as [outer, length, inner] over the middle axis, accumulated in float64 in a fixed
/// order (same numbers on every run): one thread per output when there are many outputs, one group per
/// output with a tree over shared memory when there are few and long ones (a loss, a norm).
/// </summary>
public static class Reduction
{
    /// <summary>One thread per output: r[o, i] = op over j of x[o, j, i].</summary>
    public static void PerThread<T, K>(ArrayView<T> x, ArrayView<T> r, int length, int inner, int op)
        where T : unmanaged, IFloatingPointIeee754<T> where K : struct, IScalarKind<T>
    {
        K k = default;
        for (int o = KernelCache.First; o < r.IntLength; o += KernelCache.Step)
        {
            int outer = o / inner, i = o - outer * inner, at = outer * length * inner + i;
            if (op == (int)ReduceOp.Sum)
            {
                double s = 0;
                for (int j = 0; j < length; j++) s += k.ToDouble(x[at + j * inner]);
                r[o] = k.From(s);
            }
            else
            {
                T m = x[at];
                for (int j = 1; j < length; j++) m = Max(m, x[at + j * inner]);
                r[o] = m;
            }
        }
    }

    /// <summary>One group per output (grid = outputs): the group's threads stride over j, then a tree in shared memory.</summary>
    public static void PerGroup<T, K>(ArrayView<T> x, ArrayView<T> r, int length, int inner, int op)
        where T : unmanaged, IFloatingPointIeee754<T> where K : struct, IScalarKind<T>
    {
        K k = default;
        var scratch = SharedMemory.GetDynamic<double>();
        int o = Grid.IdxX, t = Group.IdxX, outer = o / inner, i = o - outer * inner, at = outer * length * inner + i;
        bool sum = op == (int)ReduceOp.Sum;
        double acc = sum ? 0 : double.NegativeInfinity;
        bool nan = false;
        for (int j = t; j < length; j += Group.DimX)
        {
            double v = k.ToDouble(x[at + j * inner]);
            if (sum) acc += v;
            else if (double.IsNaN(v)) nan = true;
            else if (v > acc) acc = v;
        }
        scratch[t] = nan ? double.NaN : acc;
        Group.Barrier();
        for (int w = Group.DimX / 2; w > 0; w /= 2)
        {
            if (t < w) scratch[t] = sum ? scratch[t] + scratch[t + w] : MaxDouble(scratch[t], scratch[t + w]);
            Group.Barrier();
        }
        if (t == 0) r[o] = k.From(scratch[0]);
    }

    /// <summary>partials[g] = Σ x[i]·y[i] over group g's grid-stride share (the host adds the partials in order).</summary>
    public static void DotPartials<T, K>(ArrayView<T> x, ArrayView<T> y, ArrayView<double> partials)
        where T : unmanaged, IFloatingPointIeee754<T> where K : struct, IScalarKind<T>
    {
        K k = default;
        var scratch = SharedMemory.GetDynamic<double>();
        int t = Group.IdxX;
        double acc = 0;
        for (int i = KernelCache.First; i < x.IntLength; i += KernelCache.Step) acc += k.ToDouble(x[i]) * k.ToDouble(y[i]);
        scratch[t] = acc;
        Group.Barrier();
        for (int w = Group.DimX / 2; w > 0; w /= 2)
        {
            if (t < w) scratch[t] += scratch[t + w];
            Group.Barrier();
        }
        if (t == 0) partials[Grid.IdxX] = scratch[0];
    }

    private static T Max<T>(T a, T b) where T : unmanaged, IFloatingPointIeee754<T> =>
        T.IsNaN(a) || T.IsNaN(b) ? T.NaN : (a > b ? a : b);

    private static double MaxDouble(double a, double b) => double.IsNaN(a) || double.IsNaN(b) ? double.NaN : (a > b ? a : b);
}
