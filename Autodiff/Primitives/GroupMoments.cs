using Curvature.Engine;
using Curvature.Kernels.Cpu;

namespace Curvature.Autodiff.Primitives;

/// <summary>
/// The per-group mean and biased variance (float64, one value per group) that a forward pass computed from
/// <see cref="Source"/>: <see cref="NormalizeScaleShift"/> hands them to the <see cref="GroupMean"/> and
/// <see cref="GroupRstd"/> its rules build, so its backward pass does not read x again for statistics it already has.
/// In a Hessian-vector product the forward's JVP and the backward's rules both need the tangents μ̇ = mean ẋ and
/// ṙ = −r³·C(ẋ, x) along the same ẋ; the first to compute one remembers it here for the other (keyed by the tangent
/// tensor itself, so a nested level with its own tangents computes its own).
/// </summary>
internal sealed class GroupMoments(NdArray source, NdArray mean, NdArray variance)
{
    /// <summary>The array the moments are of.</summary>
    public NdArray Source { get; } = source;
    /// <summary>Per-group mean, float64.</summary>
    public NdArray Mean { get; } = mean;
    /// <summary>Per-group biased variance, float64.</summary>
    public NdArray Variance { get; } = variance;

    private sealed record Remembered(Tensor Along, Tensor? MeanDot, Tensor? RstdDot);

    private Remembered? remembered;

    /// <summary>r = 1/√(σ² + ε) per group, float64.</summary>
    public NdArray Rstd(double epsilon) => (Variance + epsilon).Apply(UnaryOp.Sqrt).Apply(UnaryOp.Reciprocal);

    /// <summary>These moments when they were computed from <paramref name="x"/> itself (the same array), else null.</summary>
    public GroupMoments? For(NdArray x) => ReferenceEquals(Source, x) ? this : null;

    /// <summary>The moments of x: those of <paramref name="known"/> when it was computed from x, else a fresh pass.</summary>
    public static (NdArray Mean, NdArray Variance) Of(GroupMoments? known, NdArray x, int groupStart, int groupEnd) =>
        known?.For(x) is { } k ? (k.Mean, k.Variance) : x.GroupMoments(groupStart, groupEnd);

    /// <summary>μ̇ along <paramref name="xDot"/>: the remembered tensor, or <paramref name="compute"/>'s, then remembered.</summary>
    public Tensor MeanTangent(Tensor xDot, Func<Tensor> compute) => Tangent(xDot, compute, rstd: false);

    /// <summary>ṙ along <paramref name="xDot"/>: the remembered tensor, or <paramref name="compute"/>'s, then remembered.</summary>
    public Tensor RstdTangent(Tensor xDot, Func<Tensor> compute) => Tangent(xDot, compute, rstd: true);

    private Tensor Tangent(Tensor xDot, Func<Tensor> compute, bool rstd)
    {
        var known = remembered is { } r && ReferenceEquals(r.Along, xDot) ? r : new Remembered(xDot, null, null);
        if ((rstd ? known.RstdDot : known.MeanDot) is { } result) return result;
        result = compute();
        remembered = rstd ? known with { RstdDot = result } : known with { MeanDot = result };
        return result;
    }
}
