using System.Numerics;
using ILGPU;

namespace Curvature.Kernels.Gpu;

/// <summary>
/// Normalisation over groups (the formulas of <see cref="Cpu.Normalization"/>): data viewed as [A, G, B], group
/// g holding x[a, g, b]. Statistics take one thread group per normalisation group, summed in float64 with a
/// tree in shared memory (two passes for the variance, so nothing cancels); the element-wise passes read them.
/// </summary>
public static class Normalization
{
    /// <summary>mean[g] and biased variance[g] (grid = G groups).</summary>
    public static void Moments<T, K>(ArrayView<T> x, ArrayView<double> mean, ArrayView<double> variance, int a, int g, int b)
        where T : unmanaged, IFloatingPointIeee754<T> where K : struct, IScalarKind<T>
    {
        K k = default;
        int gi = Grid.IdxX, count = a * b;
        double s = 0;
        for (int j = Group.IdxX; j < count; j += Group.DimX) s += k.ToDouble(x[At(j, gi, g, b)]);
        double mu = TreeSum(s) / count;
        double q = 0;
        for (int j = Group.IdxX; j < count; j += Group.DimX)
        {
            double d = k.ToDouble(x[At(j, gi, g, b)]) - mu;
            q += d * d;
        }
        double v = TreeSum(q) / count;
        if (Group.IdxX == 0) { mean[gi] = mu; variance[gi] = v; }
    }

    /// <summary>r[g] = mean of x·y over group g (grid = G groups).</summary>
    public static void MeanProduct<T, K>(ArrayView<T> x, ArrayView<T> y, ArrayView<double> r, int a, int g, int b)
        where T : unmanaged, IFloatingPointIeee754<T> where K : struct, IScalarKind<T>
    {
        K k = default;
        int gi = Grid.IdxX, count = a * b;
        double s = 0;
        for (int j = Group.IdxX; j < count; j += Group.DimX)
        {
            int at = At(j, gi, g, b);
            s += k.ToDouble(x[at]) * k.ToDouble(y[at]);
        }
        double m = TreeSum(s) / count;
        if (Group.IdxX == 0) r[gi] = m;
    }

    /// <summary>meanU[g] = mean u and meanUXhat[g] = mean u·x̂ over group g, x̂ = (x − μ)/√(σ² + ε) (grid = G groups).</summary>
    public static void JacobianMoments<T, K>(ArrayView<T> x, ArrayView<T> u, ArrayView<double> mean, ArrayView<double> variance,
        ArrayView<double> meanU, ArrayView<double> meanUXhat, NormalizationGroups p)
        where T : unmanaged, IFloatingPointIeee754<T> where K : struct, IScalarKind<T>
    {
        K k = default;
        int gi = Grid.IdxX, count = p.A * p.B;
        double mu = mean[gi], rstd = 1 / Math.Sqrt(variance[gi] + p.Epsilon), su = 0, sux = 0;
        for (int j = Group.IdxX; j < count; j += Group.DimX)
        {
            int at = At(j, gi, p.G, p.B);
            double uv = k.ToDouble(u[at]);
            su += uv;
            sux += uv * (k.ToDouble(x[at]) - mu) * rstd;
        }
        double mU = TreeSum(su) / count, mUX = TreeSum(sux) / count;
        if (Group.IdxX == 0) { meanU[gi] = mU; meanUXhat[gi] = mUX; }
    }

    /// <summary>r = (x − μ)·r per group.</summary>
    public static void Normalize<T, K>(ArrayView<T> x, ArrayView<double> mean, ArrayView<double> variance, ArrayView<T> r, NormalizationGroups p)
        where T : unmanaged, IFloatingPointIeee754<T> where K : struct, IScalarKind<T>
    {
        K k = default;
        for (int i = KernelCache.First; i < r.IntLength; i += KernelCache.Step)
        {
            int gi = i / p.B % p.G;
            r[i] = k.From((k.ToDouble(x[i]) - mean[gi]) / Math.Sqrt(variance[gi] + p.Epsilon));
        }
    }

    /// <summary>J·u = r·(u − mean u − x̂·mean(u·x̂)) per group.</summary>
    public static void Jacobian<T, K>(ArrayView<T> x, ArrayView<T> u, ArrayView<double> mean, ArrayView<double> variance,
        ArrayView<double> meanU, ArrayView<double> meanUXhat, ArrayView<T> r, NormalizationGroups p)
        where T : unmanaged, IFloatingPointIeee754<T> where K : struct, IScalarKind<T>
    {
        K k = default;
        for (int i = KernelCache.First; i < r.IntLength; i += KernelCache.Step)
        {
            int gi = i / p.B % p.G;
            double rstd = 1 / Math.Sqrt(variance[gi] + p.Epsilon), xhat = (k.ToDouble(x[i]) - mean[gi]) * rstd;
            r[i] = k.From(rstd * (k.ToDouble(u[i]) - meanU[gi] - xhat * meanUXhat[gi]));
        }
    }

    /// <summary>
    /// The coefficients of <see cref="Cpu.Normalization.JacobianTangent{T}"/> per group (grid = G groups): coefficients[6g..6g+6) =
    /// (μ, kj, kv, kw, kc, k0) of y = kj·ju + kv·v + kw·w + kc·(x − μ) + k0; w counts only when p.HasW is 1.
    /// </summary>
    public static void JacobianTangentMoments<T, K>(ArrayView<T> x, ArrayView<T> u, ArrayView<T> ju, ArrayView<T> v, ArrayView<T> w,
        ArrayView<double> coefficients, TangentGroups p)
        where T : unmanaged, IFloatingPointIeee754<T> where K : struct, IScalarKind<T>
    {
        K k = default;
        int gi = Grid.IdxX, count = p.A * p.B;
        double s = 0;
        for (int j = Group.IdxX; j < count; j += Group.DimX) s += k.ToDouble(x[At(j, gi, p.G, p.B)]);
        double mu = TreeSum(s) / count;
        double q = 0, sv = 0, svc = 0, suc = 0, sjv = 0, sw = 0, swc = 0;
        for (int j = Group.IdxX; j < count; j += Group.DimX)
        {
            int at = At(j, gi, p.G, p.B);
            double c = k.ToDouble(x[at]) - mu, vv = k.ToDouble(v[at]);
            q += c * c;
            sv += vv; svc += vv * c; suc += k.ToDouble(u[at]) * c; sjv += k.ToDouble(ju[at]) * vv;
            if (p.HasW != 0) { double wv = k.ToDouble(w[at]); sw += wv; swc += wv * c; }
        }
        double r = 1 / Math.Sqrt(TreeSum(q) / count + p.Epsilon), r2 = r * r, r3 = r2 * r;
        sv = TreeSum(sv) / count; svc = TreeSum(svc) / count; suc = TreeSum(suc) / count;
        sjv = TreeSum(sjv) / count; sw = TreeSum(sw) / count; swc = TreeSum(swc) / count;
        if (Group.IdxX == 0)
        {
            int o = 6 * gi;
            coefficients[o] = mu;
            coefficients[o + 1] = -r2 * svc;
            coefficients[o + 2] = -r3 * suc;
            coefficients[o + 3] = r;
            coefficients[o + 4] = r3 * r2 * suc * svc - r2 * sjv - r3 * swc;
            coefficients[o + 5] = r3 * suc * sv - r * sw;
        }
    }

    /// <summary>y = kj·ju + kv·v + kw·w + kc·(x − μ) + k0 with the coefficients of <see cref="JacobianTangentMoments{T, K}"/>.</summary>
    public static void JacobianTangent<T, K>(ArrayView<T> x, ArrayView<T> ju, ArrayView<T> v, ArrayView<T> w, ArrayView<double> coefficients,
        ArrayView<T> r, TangentGroups p)
        where T : unmanaged, IFloatingPointIeee754<T> where K : struct, IScalarKind<T>
    {
        K k = default;
        for (int i = KernelCache.First; i < r.IntLength; i += KernelCache.Step)
        {
            int o = 6 * (i / p.B % p.G);
            double t = coefficients[o + 1] * k.ToDouble(ju[i]) + coefficients[o + 2] * k.ToDouble(v[i])
                       + coefficients[o + 4] * (k.ToDouble(x[i]) - coefficients[o]) + coefficients[o + 5];
            if (p.HasW != 0) t += coefficients[o + 3] * k.ToDouble(w[i]);
            r[i] = k.From(t);
        }
    }

    /// <summary>r = x·scale[g] + shift[g] per group, + z when the addend flag is 1 (z is read only then), then max(·, 0) when the ReLU flag is 1.</summary>
    public static void ScaleShift<T>(ArrayView<T> x, ArrayView<T> scale, ArrayView<T> shift, ArrayView<T> z, ArrayView<T> r, AffineGroups p)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int i = KernelCache.First; i < r.IntLength; i += KernelCache.Step)
        {
            int gi = i / p.B % p.G;
            T v = x[i] * scale[gi] + shift[gi];
            if (p.Addend != 0) v += z[i];
            r[i] = p.Relu != 0 && v < T.Zero ? T.Zero : v;
        }
    }

    /// <summary>r = x·scale[g] + x2·scale2[g] + shift[g] per group (the tangent of a scale-shift in one pass), + z when the addend flag is 1.</summary>
    public static void ScaleShiftPair<T>(ArrayView<T> x, ArrayView<T> scale, ArrayView<T> shift, ArrayView<T> x2, ArrayView<T> scale2, ArrayView<T> z, ArrayView<T> r, AffineGroups p)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int i = KernelCache.First; i < r.IntLength; i += KernelCache.Step)
        {
            int gi = i / p.B % p.G;
            T v = x[i] * scale[gi] + x2[i] * scale2[gi] + shift[gi];
            r[i] = p.Addend != 0 ? v + z[i] : v;
        }
    }

    /// <summary>Element j of group gi (j = a·B + b) in the [A, G, B] view.</summary>
    private static int At(int j, int gi, int g, int b)
    {
        int ai = j / b;
        return (ai * g + gi) * b + (j - ai * b);
    }

    /// <summary>The sum of every thread's <paramref name="v"/>, returned to all threads of the group.</summary>
    internal static double TreeSum(double v)
    {
        var scratch = SharedMemory.GetDynamic<double>();
        int t = Group.IdxX;
        scratch[t] = v;
        Group.Barrier();
        for (int w = Group.DimX / 2; w > 0; w /= 2)
        {
            if (t < w) scratch[t] += scratch[t + w];
            Group.Barrier();
        }
        double total = scratch[0];
        Group.Barrier();
        return total;
    }
}

/// <summary>The groups of a scale-shift (G groups of B contiguous values, repeating) and its options: an addend (1) and a ReLU (1).</summary>
public struct AffineGroups
{
    /// <summary>Groups and the contiguous run of one group.</summary>
    public int G, B;
    /// <summary>1 to add z, 1 to clamp at zero.</summary>
    public int Addend, Relu;
}

/// <summary>The [A, G, B] view of a normalisation and its ε.</summary>
public struct NormalizationGroups
{
    /// <summary>Sizes of the view.</summary>
    public int A, G, B;
    /// <summary>Added to the variance.</summary>
    public double Epsilon;
}

/// <summary>The [A, G, B] view of <see cref="Normalization.JacobianTangent{T, K}"/>, its ε and whether w is present (1) or zero (0).</summary>
public struct TangentGroups
{
    /// <summary>Sizes of the view.</summary>
    public int A, G, B;
    /// <summary>1 when the w input counts, 0 when it is zero.</summary>
    public int HasW;
    /// <summary>Added to the variance.</summary>
    public double Epsilon;
}
