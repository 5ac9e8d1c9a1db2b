using Curvature.Engine;

namespace Curvature.Autodiff.Primitives;

/// <summary>
/// The per-group mean and biased variance (float64, one value per group) that a forward pass computed from
/// <see cref="Source"/>: <see cref="NormalizeScaleShift"/> hands them to the fused primitives its rules build, so
/// neither its backward pass nor a Hessian-vector product reads x again for statistics it already has.
/// </summary>
internal sealed class GroupMoments(NdArray source, NdArray mean, NdArray variance)
{
    /// <summary>The array the moments are of.</summary>
    public NdArray Source { get; } = source;
    /// <summary>Per-group mean, float64.</summary>
    public NdArray Mean { get; } = mean;
    /// <summary>Per-group biased variance, float64.</summary>
    public NdArray Variance { get; } = variance;

    /// <summary>These moments when they were computed from <paramref name="x"/> itself (the same array), else null.</summary>
    public GroupMoments? For(NdArray x) => ReferenceEquals(Source, x) ? this : null;

    /// <summary>The moments of x: those of <paramref name="known"/> when it was computed from x, else a fresh pass.</summary>
    public static (NdArray Mean, NdArray Variance) Of(GroupMoments? known, NdArray x, int groupStart, int groupEnd) =>
        known?.For(x) is { } k ? (k.Mean, k.Variance) : x.GroupMoments(groupStart, groupEnd);
}
