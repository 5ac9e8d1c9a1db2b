using Curvature.Kernels;

namespace Curvature.Engine;

/// <summary>
/// The grouped-normalization family's ops on <see cref="NdArray"/> (BatchNorm over [N, C, H, W] with group axes
/// [1, 2); LayerNorm over the last axis): their validation, with the lowering per device in
/// <see cref="NormalizationLowering"/>. Group axes are [groupStart, groupEnd); the statistics reduce over all other axes.
/// </summary>
public static class NormalizationOps
{
    /// <summary>
    /// (x − μ)/√(σ² + ε) with one mean and variance per group: the group axes are [groupStart, groupEnd), the
    /// statistics reduce over all other axes (BatchNorm: groups = channel axis 1; LayerNorm: all but the last).
    /// </summary>
    public static NdArray Normalize(this NdArray x, int groupStart, int groupEnd, double epsilon)
    {
        var (a, g, b) = x.NormalizationGroups("normalize", groupStart, groupEnd);
        return NormalizationLowering.Normalize(x, a, g, b, epsilon);
    }

    /// <summary>
    /// <see cref="Normalize"/> and the per-group mean and biased variance it used: float64 arrays of one value per
    /// group on this array's device (what <see cref="GroupMoments"/> gives, without a second pass where the device
    /// computes them anyway).
    /// </summary>
    public static (NdArray Normalized, NdArray Mean, NdArray Variance) NormalizeWithMoments(this NdArray x, int groupStart, int groupEnd, double epsilon)
    {
        var (a, g, b) = x.NormalizationGroups("normalize", groupStart, groupEnd);
        return NormalizationLowering.NormalizeWithMoments(x, a, g, b, epsilon);
    }

    /// <summary>The shape of one value per group, kept as size-1 axes outside the group axes (broadcasts against this array).</summary>
    public static Shape GroupShape(this NdArray x, int groupStart, int groupEnd) =>
        new(x.Shape.ToArray().Select((d, i) => i >= groupStart && i < groupEnd ? d : 1).ToArray());

    /// <summary>
    /// this·scale + shift with one scale and one shift per group (each holding as many values as there are groups),
    /// plus <paramref name="addend"/> (this array's shape) when given, then max(·, 0) when <paramref name="relu"/> is set.
    /// </summary>
    public static NdArray ScaleShift(this NdArray x, NdArray scale, NdArray shift, int groupStart, int groupEnd, NdArray? addend = null, bool relu = false)
    {
        var (a, g, b) = x.NormalizationGroups("scale_shift", groupStart, groupEnd);
        NdArray.CheckPair("scale_shift", x, scale);
        NdArray.CheckPair("scale_shift", x, shift);
        if (scale.Size != g || shift.Size != g)
            throw new ArgumentException($"scale_shift: scale {scale.Shape} and shift {shift.Shape} for {g} groups of {x.Shape}; expected {g} values each.");
        x.CheckAddend(addend);
        return NormalizationLowering.ScaleShift(x, scale, shift, a, g, b, addend, relu);
    }

    /// <summary>this·scale + x2·scale2 + shift with one scale, scale2 and shift per group, plus <paramref name="addend"/> when given; x2 and the addend have this array's shape.</summary>
    public static NdArray ScaleShift(this NdArray x, NdArray scale, NdArray shift, NdArray x2, NdArray scale2, int groupStart, int groupEnd, NdArray? addend = null)
    {
        var (a, g, b) = x.NormalizationGroups("scale_shift", groupStart, groupEnd);
        foreach (var other in new[] { scale, shift, x2, scale2 }) NdArray.CheckPair("scale_shift", x, other);
        if (x2.Shape != x.Shape) throw new ArgumentException($"scale_shift: x {x.Shape} and x2 {x2.Shape}; expected the same shape.");
        if (scale.Size != g || shift.Size != g || scale2.Size != g)
            throw new ArgumentException($"scale_shift: scale {scale.Shape}, scale2 {scale2.Shape} and shift {shift.Shape} for {g} groups of {x.Shape}; expected {g} values each.");
        x.CheckAddend(addend);
        return NormalizationLowering.ScaleShift(x, scale, shift, x2, scale2, a, g, b, addend);
    }

    /// <summary>
    /// The per-group coefficients of x̂·γ + β = x·s + t for x's groups, from γ and β (this array's dtype, one value per
    /// group) and x's moments (<see cref="GroupMoments"/>): [2, G] in this dtype, row 0 s = γ·r and row 1 t = β − μ·s,
    /// r = 1/√(σ² + ε), each computed in float64 and rounded once. One kernel where op by op it took a dozen.
    /// </summary>
    public static NdArray ScaleShiftCoefficients(this NdArray x, NdArray gamma, NdArray beta, NdArray mean, NdArray variance, int groupStart, int groupEnd, double epsilon)
    {
        const string op = "scale_shift_coefficients";
        var (_, g, _) = x.NormalizationGroups(op, groupStart, groupEnd);
        x.CheckMoments(op, g, mean, variance);
        x.CheckPerGroup(op, g, ("γ", gamma), ("β", beta));
        return NormalizationLowering.NormalizeScaleShiftCoefficients(gamma, beta, mean, variance, epsilon);
    }

    /// <summary>
    /// What the backward of x̂·γ + β needs per group of this array x, from the output's cotangent u (this shape), γ
    /// and x's moments (<see cref="GroupMoments"/>), in one read pass over x and u: [5, G] in this dtype with rows Σu,
    /// Σu·x̂ (β's and γ's cotangents) and the a, k, c of x̄ = u·a + x·k + c (Ioffe and Szegedy 2015, §3).
    /// </summary>
    public static NdArray ScaleShiftBackward(this NdArray x, NdArray u, NdArray gamma, NdArray mean, NdArray variance, int groupStart, int groupEnd, double epsilon)
    {
        const string op = "scale_shift_backward";
        var (a, g, b) = x.NormalizationGroups(op, groupStart, groupEnd);
        x.CheckMoments(op, g, mean, variance);
        x.CheckPerGroup(op, g, ("γ", gamma));
        x.CheckLike(op, ("u", u));
        return NormalizationLowering.NormalizeScaleShiftBackward(x, u, gamma, mean, variance, a, g, b, epsilon);
    }

    /// <summary>
    /// BatchNorm's running statistics after a training batch (PyTorch's update): mean' = (1 − m)·mean + m·μ,
    /// var' = (1 − m)·var + m·σ²·<paramref name="bessel"/> (σ² the batch's biased variance, bessel n/(n − 1)) and the
    /// batch counter plus one, from this running mean, <paramref name="runningVariance"/>, the int64 counter and the
    /// batch's float64 moments (<see cref="GroupMoments"/>): fresh arrays, one kernel on an accelerator.
    /// </summary>
    public static (NdArray Mean, NdArray Variance, NdArray Batches) UpdateRunningStatistics(this NdArray x, NdArray runningVariance, NdArray batches, NdArray mean, NdArray variance, double momentum, double bessel)
    {
        const string op = "update_running_statistics";
        NdArray.CheckPair(op, x, runningVariance);
        if (runningVariance.Shape != x.Shape) throw new ArgumentException($"{op}: running mean {x.Shape} and running variance {runningVariance.Shape}; expected the same shape.");
        if (batches.DType != DType.Int64 || batches.Size != 1 || batches.Device != x.Device)
            throw new ArgumentException($"{op}: batch counter {batches.DType.Name()} {batches.Shape} on {batches.Device.Name}; expected one int64 on {x.Device.Name}.");
        x.CheckMoments(op, checked((int)x.Size), mean, variance);
        return NormalizationLowering.UpdateRunningStatistics(x, runningVariance, batches, mean, variance, momentum, bessel);
    }

    /// <summary>
    /// <see cref="ScaleShiftCoefficients"/> and their tangents along (ẋ, γ̇, β̇) for this array x's groups: [4, G] in
    /// this dtype with rows s, t, ṡ and ṫ, so that the tangent of x·s + t is ẋ·s + x·ṡ + ṫ, from one read pass over x
    /// and ẋ (μ̇ = mean ẋ, ṙ = −r³·C(ẋ, x)). A null tangent is zero.
    /// </summary>
    public static NdArray ScaleShiftTangent(this NdArray x, NdArray? xDot, NdArray gamma, NdArray beta, NdArray? gammaDot, NdArray? betaDot, NdArray mean, NdArray variance,
        int groupStart, int groupEnd, double epsilon)
    {
        const string op = "scale_shift_tangent";
        var (a, g, b) = x.NormalizationGroups(op, groupStart, groupEnd);
        x.CheckMoments(op, g, mean, variance);
        x.CheckPerGroup(op, g, ("γ", gamma), ("β", beta), ("γ̇", gammaDot), ("β̇", betaDot));
        x.CheckLike(op, ("ẋ", xDot));
        return NormalizationLowering.NormalizeScaleShiftTangent(x, xDot, gamma, beta, gammaDot, betaDot, mean, variance, a, g, b, epsilon);
    }

    /// <summary>
    /// The tangents of <see cref="ScaleShiftBackward"/>'s five rows along (ẋ, γ̇, u̇), for this array x, the cotangent
    /// u and γ: [5, G] in this dtype. A null tangent is zero.
    /// </summary>
    public static NdArray ScaleShiftBackwardTangent(this NdArray x, NdArray u, NdArray gamma, NdArray? xDot, NdArray? gammaDot, NdArray? uDot, NdArray mean, NdArray variance,
        int groupStart, int groupEnd, double epsilon)
    {
        const string op = "scale_shift_backward_tangent";
        var (a, g, b) = x.NormalizationGroups(op, groupStart, groupEnd);
        x.CheckMoments(op, g, mean, variance);
        x.CheckPerGroup(op, g, ("γ", gamma), ("γ̇", gammaDot));
        x.CheckLike(op, ("u", u), ("ẋ", xDot), ("u̇", uDot));
        return NormalizationLowering.NormalizeScaleShiftBackwardTangent(x, u, gamma, xDot, gammaDot, uDot, mean, variance, a, g, b, epsilon);
    }

    private static void CheckPerGroup(this NdArray x, string op, int groups, params (string Name, NdArray? Value)[] arrays)
    {
        foreach (var (name, value) in arrays)
        {
            if (value is null) continue;
            NdArray.CheckPair(op, x, value);
            if (value.Size != groups) throw new ArgumentException($"{op}: {name} {value.Shape} for {groups} groups of {x.Shape}; expected {groups} values.");
        }
    }

    private static void CheckLike(this NdArray x, string op, params (string Name, NdArray? Value)[] arrays)
    {
        foreach (var (name, value) in arrays)
        {
            if (value is null) continue;
            NdArray.CheckPair(op, x, value);
            if (value.Shape != x.Shape) throw new ArgumentException($"{op}: x {x.Shape} and {name} {value.Shape}; expected the same shape.");
        }
    }

    private static void CheckMoments(this NdArray x, string op, int groups, NdArray mean, NdArray variance)
    {
        foreach (var m in new[] { mean, variance })
            if (m.DType != DType.Float64 || m.Size != groups || m.Device != x.Device)
                throw new ArgumentException($"{op}: moments {m.DType.Name()} {m.Shape} on {m.Device.Name}; expected float64 with {groups} values on {x.Device.Name}, as GroupMoments gives.");
    }

    private static void CheckAddend(this NdArray x, NdArray? addend)
    {
        if (addend is null) return;
        NdArray.CheckPair("scale_shift", x, addend);
        if (addend.Shape != x.Shape) throw new ArgumentException($"scale_shift: x {x.Shape} and addend {addend.Shape}; expected the same shape.");
    }

    /// <summary>Per-group mean of this·y (same shape), shaped as <see cref="GroupShape"/>.</summary>
    public static NdArray GroupMeanProduct(this NdArray x, NdArray y, int groupStart, int groupEnd)
    {
        var (a, g, b) = x.NormalizationGroups("group_mean_product", groupStart, groupEnd);
        NdArray.CheckPair("group_mean_product", x, y);
        if (y.Shape != x.Shape) throw new ArgumentException($"group_mean_product: {x.Shape} and {y.Shape}; expected the same shape.");
        return NormalizationLowering.GroupMeanProduct(x, y, a, g, b).Reshape(x.GroupShape(groupStart, groupEnd)).Cast(x.DType);
    }

    /// <summary>
    /// Per-group covariance mean((this − mean this)·(y − mean y)) (same shape), shaped as <see cref="GroupShape"/>:
    /// without the cancellation of mean(this·y) − mean this·mean y when the means are large.
    /// </summary>
    public static NdArray GroupCovariance(this NdArray x, NdArray y, int groupStart, int groupEnd)
    {
        var (a, g, b) = x.NormalizationGroups("group_covariance", groupStart, groupEnd);
        NdArray.CheckPair("group_covariance", x, y);
        if (y.Shape != x.Shape) throw new ArgumentException($"group_covariance: {x.Shape} and {y.Shape}; expected the same shape.");
        return NormalizationLowering.GroupCovariance(x, y, a, g, b).Reshape(x.GroupShape(groupStart, groupEnd)).Cast(x.DType);
    }

    /// <summary>Per-group 1/√(σ² + ε) (biased variance), shaped as <see cref="GroupShape"/>.</summary>
    public static NdArray GroupRstd(this NdArray x, int groupStart, int groupEnd, double epsilon)
    {
        var (_, variance) = x.GroupMoments(groupStart, groupEnd);
        return (variance + epsilon).Apply(UnaryOp.Sqrt).Apply(UnaryOp.Reciprocal).Reshape(x.GroupShape(groupStart, groupEnd)).Cast(x.DType);
    }

    /// <summary>
    /// The per-group mean and biased variance that <see cref="Normalize"/> uses (group axes [groupStart, groupEnd)):
    /// float64 arrays of one value per group, on this array's device.
    /// </summary>
    public static (NdArray Mean, NdArray Variance) GroupMoments(this NdArray x, int groupStart, int groupEnd)
    {
        var (a, g, b) = x.NormalizationGroups("group_moments", groupStart, groupEnd);
        return NormalizationLowering.GroupMoments(x, a, g, b);
    }

    /// <summary>The Jacobian of <see cref="Normalize"/> at this array applied to <paramref name="u"/> (same shape).</summary>
    public static NdArray NormalizeJacobian(this NdArray x, NdArray u, int groupStart, int groupEnd, double epsilon)
    {
        var (a, g, b) = x.NormalizationGroups("normalize_jacobian", groupStart, groupEnd);
        NdArray.CheckPair("normalize_jacobian", x, u);
        if (u.Shape != x.Shape) throw new ArgumentException($"normalize_jacobian: x {x.Shape} and u {u.Shape}; expected the same shape.");
        return NormalizationLowering.NormalizeJacobian(x, u, a, g, b, epsilon);
    }

    /// <summary>
    /// The tangent of J(x)·u (<see cref="NormalizeJacobian"/> at this array x) along (v, w): ∂ₓ(J u)[v] + J·w, given
    /// <paramref name="ju"/> = J(x)·u; <paramref name="w"/> null means zero. All arrays have this array's shape.
    /// </summary>
    public static NdArray NormalizeJacobianTangent(this NdArray x, NdArray u, NdArray ju, NdArray v, NdArray? w, int groupStart, int groupEnd, double epsilon)
    {
        var (a, g, b) = x.NormalizationGroups("normalize_jacobian_tangent", groupStart, groupEnd);
        foreach (var (name, other) in new[] { ("u", u), ("ju", ju), ("v", v), ("w", w) })
        {
            if (other is null) continue;
            NdArray.CheckPair("normalize_jacobian_tangent", x, other);
            if (other.Shape != x.Shape) throw new ArgumentException($"normalize_jacobian_tangent: x {x.Shape} and {name} {other.Shape}; expected the same shape.");
        }
        return NormalizationLowering.NormalizeJacobianTangent(x, u, ju, v, w, a, g, b, epsilon);
    }

    private static (int A, int G, int B) NormalizationGroups(this NdArray x, string op, int start, int end)
    {
        x.RequireFloat(op);
        if (start < 0 || end > x.Rank || start >= end)
            throw new ArgumentException($"{op}: group axes [{start}, {end}) of a rank-{x.Rank} array {x.Shape}; expected 0 ≤ start < end ≤ rank.");
        long a = 1, g = 1, b = 1;
        for (int i = 0; i < start; i++) a *= x.Shape[i];
        for (int i = start; i < end; i++) g *= x.Shape[i];
        for (int i = end; i < x.Rank; i++) b *= x.Shape[i];
        if (a * b < 1) throw new ArgumentException($"{op}: {x.Shape} has empty groups.");
        return (checked((int)a), checked((int)g), checked((int)b));
    }
}
