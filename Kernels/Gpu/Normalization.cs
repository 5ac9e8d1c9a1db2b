using System.Numerics;
using ILGPU;

namespace Curvature.Kernels.Gpu;

/// <summary>
/// Normalization over groups (the formulas of <see cref="Cpu.Normalization"/>): data viewed as [A, G, B], group
/// g holding x[a, g, b]. Statistics run in two launches: each group is split into <see cref="Splits"/> blocks of
/// whole images, one thread group each, which sum their part in float64 with a tree in shared memory (two passes
/// for the moments, so nothing cancels); then one thread per group merges its blocks in order (moments by Chan,
/// Golub and LeVeque's update, sums added). One thread group per normalization group would put BatchNorm's 16 to 64
/// groups on a GPU of 132 multiprocessors. The element-wise passes read the merged statistics.
/// </summary>
public static class Normalization
{
    /// <summary>
    /// Blocks per group: whole images of at least 2,048 values each, at most 64 per group. A function of the shape
    /// alone, so every device adds in the same order.
    /// </summary>
    public static int Splits(int a, int b) => (int)Math.Clamp((long)a * b / 2048, 1, Math.Max(1, Math.Min(a, 64)));

    /// <summary>partial[3k..3k+3) = (count, mean, centered sum of squares) of block k = g·S + s (grid = G·S groups).</summary>
    public static void PartialMoments<T, K>(ArrayView<T> x, ArrayView<double> partial, NormalizationGroups p)
        where T : unmanaged, IFloatingPointIeee754<T> where K : struct, IScalarKind<T>
    {
        K k = default;
        var block = BlockOf(Grid.IdxX, p);
        int gi = block.Group, a0 = block.FirstImage, count = block.Count;
        double s = 0;
        for (int j = Group.IdxX; j < count; j += Group.DimX) s += k.ToDouble(x[At(j, a0, gi, p)]);
        double mu = TreeSum(s) / Math.Max(1, count);
        double q = 0;
        for (int j = Group.IdxX; j < count; j += Group.DimX)
        {
            double d = k.ToDouble(x[At(j, a0, gi, p)]) - mu;
            q += d * d;
        }
        double m2 = TreeSum(q);
        if (Group.IdxX == 0) { partial[3 * block.Index] = count; partial[3 * block.Index + 1] = mu; partial[3 * block.Index + 2] = m2; }
    }

    /// <summary>mean[g] and biased variance[g] from the blocks of <see cref="PartialMoments{T, K}"/>, merged in order (grid-stride over G).</summary>
    public static void MergeMoments(ArrayView<double> partial, ArrayView<double> mean, ArrayView<double> variance, NormalizationGroups p)
    {
        for (int gi = KernelCache.First; gi < p.G; gi += KernelCache.Step)
        {
            double n = 0, mu = 0, m2 = 0;
            for (int s = 0; s < p.S; s++)
            {
                int o = 3 * (gi * p.S + s);
                double nb = partial[o];
                if (nb == 0) continue;
                if (n == 0) { n = nb; mu = partial[o + 1]; m2 = partial[o + 2]; continue; }
                double total = n + nb, delta = partial[o + 1] - mu;
                mu += delta * nb / total;
                m2 += partial[o + 2] + delta * delta * n * nb / total;
                n = total;
            }
            mean[gi] = mu;
            variance[gi] = m2 / n;
        }
    }

    /// <summary>partial[k] = Σ x·y over block k of group g (grid = G·S groups).</summary>
    public static void PartialProduct<T, K>(ArrayView<T> x, ArrayView<T> y, ArrayView<double> partial, NormalizationGroups p)
        where T : unmanaged, IFloatingPointIeee754<T> where K : struct, IScalarKind<T>
    {
        K k = default;
        var block = BlockOf(Grid.IdxX, p);
        int gi = block.Group, a0 = block.FirstImage, count = block.Count;
        double s = 0;
        for (int j = Group.IdxX; j < count; j += Group.DimX)
        {
            int at = At(j, a0, gi, p);
            s += k.ToDouble(x[at]) * k.ToDouble(y[at]);
        }
        double total = TreeSum(s);
        if (Group.IdxX == 0) partial[block.Index] = total;
    }

    /// <summary>partial[k] = Σ x·(y − μ_y) over block k of group g, μ_y the merged mean of y (grid = G·S groups).</summary>
    public static void PartialCenteredProduct<T, K>(ArrayView<T> x, ArrayView<T> y, ArrayView<double> mean, ArrayView<double> partial, NormalizationGroups p)
        where T : unmanaged, IFloatingPointIeee754<T> where K : struct, IScalarKind<T>
    {
        K k = default;
        var block = BlockOf(Grid.IdxX, p);
        int gi = block.Group, a0 = block.FirstImage, count = block.Count;
        double mu = mean[gi], s = 0;
        for (int j = Group.IdxX; j < count; j += Group.DimX)
        {
            int at = At(j, a0, gi, p);
            s += k.ToDouble(x[at]) * (k.ToDouble(y[at]) - mu);
        }
        double total = TreeSum(s);
        if (Group.IdxX == 0) partial[block.Index] = total;
    }

    /// <summary>
    /// partial[2k] = Σ u and partial[2k + 1] = Σ u·x̂ over block k, x̂ = (x − μ)/√(σ² + ε) with the merged moments
    /// (grid = G·S groups).
    /// </summary>
    public static void PartialJacobianSums<T, K>(ArrayView<T> x, ArrayView<T> u, ArrayView<double> mean, ArrayView<double> variance,
        ArrayView<double> partial, NormalizationGroups p)
        where T : unmanaged, IFloatingPointIeee754<T> where K : struct, IScalarKind<T>
    {
        K k = default;
        var block = BlockOf(Grid.IdxX, p);
        int gi = block.Group, a0 = block.FirstImage, count = block.Count;
        double mu = mean[gi], rstd = 1 / Math.Sqrt(variance[gi] + p.Epsilon), su = 0, sux = 0;
        for (int j = Group.IdxX; j < count; j += Group.DimX)
        {
            int at = At(j, a0, gi, p);
            double uv = k.ToDouble(u[at]);
            su += uv;
            sux += uv * (k.ToDouble(x[at]) - mu) * rstd;
        }
        double sumU = TreeSum(su), sumUXhat = TreeSum(sux);
        if (Group.IdxX == 0) { partial[2 * block.Index] = sumU; partial[2 * block.Index + 1] = sumUXhat; }
    }

    /// <summary>
    /// BatchNorm's running statistics (the formula of <see cref="Cpu.Normalization.UpdateRunningStatistics{T}"/>) and
    /// the batch counter plus one, in one launch (grid-stride over the channels).
    /// </summary>
    public static void UpdateRunningStatistics<T, K>(ArrayView<T> runningMean, ArrayView<T> runningVariance, ArrayView<long> batches,
        ArrayView<double> mean, ArrayView<double> variance, ArrayView<T> newMean, ArrayView<T> newVariance, ArrayView<long> newBatches, RunningUpdate p)
        where T : unmanaged, IFloatingPointIeee754<T> where K : struct, IScalarKind<T>
    {
        K k = default;
        T keep = k.From(1 - p.Momentum), take = k.From(p.Momentum);
        for (int i = KernelCache.First; i < newMean.IntLength; i += KernelCache.Step)
        {
            newMean[i] = keep * runningMean[i] + take * k.From(mean[i]);
            newVariance[i] = keep * runningVariance[i] + take * k.From(variance[i] * p.Bessel);
        }
        if (KernelCache.First == 0) newBatches[0] = batches[0] + 1;
    }

    /// <summary>r[g] = s and r[G + g] = t of <see cref="NormalizationCoefficients"/>, from γ, β and the moments (grid-stride over G).</summary>
    public static void ScaleShiftCoefficients<T, K>(ArrayView<T> gamma, ArrayView<T> beta, ArrayView<double> mean, ArrayView<double> variance,
        ArrayView<T> r, NormalizationGroups p)
        where T : unmanaged, IFloatingPointIeee754<T> where K : struct, IScalarKind<T>
    {
        K k = default;
        for (int gi = KernelCache.First; gi < p.G; gi += KernelCache.Step)
        {
            double s = NormalizationCoefficients.Scale(k.ToDouble(gamma[gi]), variance[gi], p.Epsilon);
            r[gi] = k.From(s);
            r[p.G + gi] = k.From(NormalizationCoefficients.Shift(k.ToDouble(beta[gi]), mean[gi], s));
        }
    }

    /// <summary>
    /// The backward's rows Σu, Σu·x̂, a, k, c (r[j·G + g]; see <see cref="NormalizationCoefficients.Backward"/>) from the
    /// blocks of <see cref="PartialJacobianSums{T, K}"/>, merged in order: the statistics and the coefficients in one
    /// launch (grid-stride over G).
    /// </summary>
    public static void ScaleShiftBackward<T, K>(ArrayView<double> partial, ArrayView<T> gamma, ArrayView<double> mean, ArrayView<double> variance,
        ArrayView<T> r, NormalizationGroups p)
        where T : unmanaged, IFloatingPointIeee754<T> where K : struct, IScalarKind<T>
    {
        K k = default;
        double n = (double)p.A * p.B;
        for (int gi = KernelCache.First; gi < p.G; gi += KernelCache.Step)
        {
            double sumU = BlockSum(partial, 2 * gi * p.S, 2, p.S), sumUXhat = BlockSum(partial, 2 * gi * p.S + 1, 2, p.S);
            var c = NormalizationCoefficients.Backward(k.ToDouble(gamma[gi]), mean[gi], variance[gi], p.Epsilon, sumU / n, sumUXhat / n);
            r[gi] = k.From(sumU);
            r[p.G + gi] = k.From(sumUXhat);
            r[2 * p.G + gi] = k.From(c.A);
            r[3 * p.G + gi] = k.From(c.K);
            r[4 * p.G + gi] = k.From(c.C);
        }
    }

    /// <summary>
    /// Rows s, t, ṡ, ṫ (r[j·G + g]; see <see cref="NormalizationCoefficients.Tangent"/>) from the blocks of
    /// <see cref="PartialJacobianSums{T, K}"/> of (x, ẋ), merged in order (grid-stride over G).
    /// </summary>
    public static void ScaleShiftTangent<T, K>(ArrayView<double> partial, ArrayView<T> gamma, ArrayView<T> beta, ArrayView<T> gammaDot, ArrayView<T> betaDot,
        ArrayView<double> mean, ArrayView<double> variance, ArrayView<T> r, NormalizationGroups p)
        where T : unmanaged, IFloatingPointIeee754<T> where K : struct, IScalarKind<T>
    {
        K k = default;
        double n = (double)p.A * p.B;
        for (int gi = KernelCache.First; gi < p.G; gi += KernelCache.Step)
        {
            double sum = BlockSum(partial, 2 * gi * p.S, 2, p.S), sumXhat = BlockSum(partial, 2 * gi * p.S + 1, 2, p.S);
            var c = NormalizationCoefficients.Tangent(k.ToDouble(gamma[gi]), k.ToDouble(beta[gi]), k.ToDouble(gammaDot[gi]), k.ToDouble(betaDot[gi]),
                mean[gi], variance[gi], p.Epsilon, sum / n, sumXhat / n);
            r[gi] = k.From(c.S);
            r[p.G + gi] = k.From(c.T);
            r[2 * p.G + gi] = k.From(c.SDot);
            r[3 * p.G + gi] = k.From(c.TDot);
        }
    }

    /// <summary>
    /// The tangents of <see cref="ScaleShiftBackward{T, K}"/>'s rows (r[j·G + g]; see
    /// <see cref="NormalizationCoefficients.BackwardTangent"/>) from block sums laid out as
    /// <see cref="PartialJacobianSums{T, K}"/> of (x, u), then of (x, ẋ), then of (x, u̇) (2·G·S each), then
    /// <see cref="PartialProduct{T, K}"/> of (u, ẋ) (G·S), merged in order (grid-stride over G).
    /// </summary>
    public static void ScaleShiftBackwardTangent<T, K>(ArrayView<double> partial, ArrayView<T> gamma, ArrayView<T> gammaDot,
        ArrayView<double> mean, ArrayView<double> variance, ArrayView<T> r, NormalizationGroups p)
        where T : unmanaged, IFloatingPointIeee754<T> where K : struct, IScalarKind<T>
    {
        K k = default;
        double n = (double)p.A * p.B;
        int section = 2 * p.G * p.S;
        for (int gi = KernelCache.First; gi < p.G; gi += KernelCache.Step)
        {
            int o = 2 * gi * p.S;
            double su = BlockSum(partial, o, 2, p.S), sux = BlockSum(partial, o + 1, 2, p.S);
            double sxd = BlockSum(partial, section + o, 2, p.S), sxdx = BlockSum(partial, section + o + 1, 2, p.S);
            double sud = BlockSum(partial, 2 * section + o, 2, p.S), sudx = BlockSum(partial, 2 * section + o + 1, 2, p.S);
            double suxd = BlockSum(partial, 3 * section + gi * p.S, 1, p.S);
            var c = NormalizationCoefficients.BackwardTangent(k.ToDouble(gamma[gi]), k.ToDouble(gammaDot[gi]), mean[gi], variance[gi], p.Epsilon, n,
                su / n, sux / n, sxd / n, sxdx / n, sud / n, sudx / n, suxd / n);
            r[gi] = k.From(c.Sum);
            r[p.G + gi] = k.From(c.Product);
            r[2 * p.G + gi] = k.From(c.A);
            r[3 * p.G + gi] = k.From(c.K);
            r[4 * p.G + gi] = k.From(c.C);
        }
    }

    /// <summary>Σ partial[first + s·stride] over a group's <paramref name="blocks"/> block sums, in block order.</summary>
    private static double BlockSum(ArrayView<double> partial, int first, int stride, int blocks)
    {
        double total = 0;
        for (int s = 0; s < blocks; s++) total += partial[first + s * stride];
        return total;
    }

    /// <summary>means[g·k + j] = (Σ over the blocks of group g of partial[(g·S + s)·k + j]) / (A·B) (grid-stride over G).</summary>
    public static void MergeMeans(ArrayView<double> partial, ArrayView<double> means, int k, NormalizationGroups p)
    {
        double count = (double)p.A * p.B;
        for (int gi = KernelCache.First; gi < p.G; gi += KernelCache.Step)
            for (int j = 0; j < k; j++)
            {
                double s = 0;
                for (int b = 0; b < p.S; b++) s += partial[(gi * p.S + b) * k + j];
                means[gi * k + j] = s / count;
            }
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

    /// <summary>J·u = r·(u − mean u − x̂·mean(u·x̂)) per group, means[2g] = mean u and means[2g + 1] = mean u·x̂.</summary>
    public static void Jacobian<T, K>(ArrayView<T> x, ArrayView<T> u, ArrayView<double> mean, ArrayView<double> variance,
        ArrayView<double> means, ArrayView<T> r, NormalizationGroups p)
        where T : unmanaged, IFloatingPointIeee754<T> where K : struct, IScalarKind<T>
    {
        K k = default;
        for (int i = KernelCache.First; i < r.IntLength; i += KernelCache.Step)
        {
            int gi = i / p.B % p.G;
            double rstd = 1 / Math.Sqrt(variance[gi] + p.Epsilon), xhat = (k.ToDouble(x[i]) - mean[gi]) * rstd;
            r[i] = k.From(rstd * (k.ToDouble(u[i]) - means[2 * gi] - xhat * means[2 * gi + 1]));
        }
    }

    /// <summary>
    /// The six sums of <see cref="Cpu.Normalization.JacobianTangent{T}"/> over block k, with c = x − μ (merged
    /// moments): partial[6k..6k+6) = (Σv, Σv·c, Σu·c, Σju·v, Σw, Σw·c); w counts only when p.HasW is 1 (grid = G·S groups).
    /// </summary>
    public static void PartialTangentSums<T, K>(ArrayView<T> x, ArrayView<T> u, ArrayView<T> ju, ArrayView<T> v, ArrayView<T> w,
        ArrayView<double> mean, ArrayView<double> partial, NormalizationGroups p)
        where T : unmanaged, IFloatingPointIeee754<T> where K : struct, IScalarKind<T>
    {
        K k = default;
        var block = BlockOf(Grid.IdxX, p);
        int gi = block.Group, a0 = block.FirstImage, count = block.Count;
        double mu = mean[gi], sv = 0, svc = 0, suc = 0, sjv = 0, sw = 0, swc = 0;
        for (int j = Group.IdxX; j < count; j += Group.DimX)
        {
            int at = At(j, a0, gi, p);
            double c = k.ToDouble(x[at]) - mu, vv = k.ToDouble(v[at]);
            sv += vv; svc += vv * c; suc += k.ToDouble(u[at]) * c; sjv += k.ToDouble(ju[at]) * vv;
            if (p.HasW != 0) { double wv = k.ToDouble(w[at]); sw += wv; swc += wv * c; }
        }
        sv = TreeSum(sv); svc = TreeSum(svc); suc = TreeSum(suc); sjv = TreeSum(sjv); sw = TreeSum(sw); swc = TreeSum(swc);
        if (Group.IdxX == 0)
        {
            int o = 6 * block.Index;
            partial[o] = sv; partial[o + 1] = svc; partial[o + 2] = suc; partial[o + 3] = sjv; partial[o + 4] = sw; partial[o + 5] = swc;
        }
    }

    /// <summary>
    /// The coefficients of <see cref="Cpu.Normalization.JacobianTangent{T}"/> per group from the blocks' sums
    /// (grid-stride over G): coefficients[6g..6g+6) = (μ, kj, kv, kw, kc, k0) of y = kj·ju + kv·v + kw·w + kc·(x − μ) + k0.
    /// </summary>
    public static void TangentCoefficients(ArrayView<double> partial, ArrayView<double> mean, ArrayView<double> variance, ArrayView<double> coefficients, NormalizationGroups p)
    {
        double count = (double)p.A * p.B;
        for (int gi = KernelCache.First; gi < p.G; gi += KernelCache.Step)
        {
            double sv = 0, svc = 0, suc = 0, sjv = 0, sw = 0, swc = 0;
            for (int b = 0; b < p.S; b++)
            {
                int o = 6 * (gi * p.S + b);
                sv += partial[o]; svc += partial[o + 1]; suc += partial[o + 2]; sjv += partial[o + 3]; sw += partial[o + 4]; swc += partial[o + 5];
            }
            sv /= count; svc /= count; suc /= count; sjv /= count; sw /= count; swc /= count;
            double r = 1 / Math.Sqrt(variance[gi] + p.Epsilon), r2 = r * r, r3 = r2 * r;
            int c = 6 * gi;
            coefficients[c] = mean[gi];
            coefficients[c + 1] = -r2 * svc;
            coefficients[c + 2] = -r3 * suc;
            coefficients[c + 3] = r;
            coefficients[c + 4] = r3 * r2 * suc * svc - r2 * sjv - r3 * swc;
            coefficients[c + 5] = r3 * suc * sv - r * sw;
        }
    }

    /// <summary>y = kj·ju + kv·v + kw·w + kc·(x − μ) + k0 with the coefficients of <see cref="TangentCoefficients"/>.</summary>
    public static void JacobianTangent<T, K>(ArrayView<T> x, ArrayView<T> ju, ArrayView<T> v, ArrayView<T> w, ArrayView<double> coefficients,
        ArrayView<T> r, NormalizationGroups p)
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

    /// <summary>Statistics block <paramref name="index"/> (= g·S + s): its group, first image and element count.</summary>
    private static StatisticsBlock BlockOf(int index, NormalizationGroups p)
    {
        int s = index % p.S, first = (int)((long)s * p.A / p.S), end = (int)((long)(s + 1) * p.A / p.S);
        return new StatisticsBlock { Index = index, Group = index / p.S, FirstImage = first, Count = (end - first) * p.B };
    }

    /// <summary>Element j of group gi counted from image a0 (j = (a − a0)·B + b) in the [A, G, B] view.</summary>
    private static int At(int j, int a0, int gi, NormalizationGroups p)
    {
        int ai = j / p.B;
        return ((a0 + ai) * p.G + gi) * p.B + (j - ai * p.B);
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

/// <summary>The momentum m and the variance's unbiasing factor n/(n − 1) of a running-statistics update.</summary>
public struct RunningUpdate
{
    /// <summary>m and n/(n − 1).</summary>
    public double Momentum, Bessel;
}

/// <summary>The groups of a scale-shift (G groups of B contiguous values, repeating) and its options: an addend (1) and a ReLU (1).</summary>
public struct AffineGroups
{
    /// <summary>Groups and the contiguous run of one group.</summary>
    public int G, B;
    /// <summary>1 to add z, 1 to clamp at zero.</summary>
    public int Addend, Relu;
}

/// <summary>One block of a statistics launch: whole images [FirstImage, FirstImage + Count/B) of one group.</summary>
internal struct StatisticsBlock
{
    /// <summary>The block (g·S + s), its group, its first image and its element count.</summary>
    public int Index, Group, FirstImage, Count;
}

/// <summary>
/// The [A, G, B] view of a normalization: its sizes, the statistics blocks per group S (see
/// <see cref="Normalization.Splits"/>; the element-wise passes ignore it), ε, and whether the tangent's w counts (1).
/// </summary>
public struct NormalizationGroups
{
    /// <summary>Sizes of the view and the blocks per group.</summary>
    public int A, G, B, S;
    /// <summary>1 when the tangent's w input counts, 0 when it is zero.</summary>
    public int HasW;
    /// <summary>Added to the variance.</summary>
    public double Epsilon;
}
