using Curvature.Engine;

namespace Curvature.Autodiff.Primitives;

/// <summary>
/// The per-group mean and biased variance (float64, one value per group) that a forward pass computed from
/// <see cref="Source"/>: <see cref="NormalizeScaleShift"/> hands them to the <see cref="GroupMean"/> and
/// <see cref="GroupRstd"/> its rules build, so its backward pass does not read x again for statistics it already has.
/// </summary>
internal sealed record GroupMoments(NdArray Source, NdArray Mean, NdArray Variance)
{
    /// <summary>These moments when they were computed from <paramref name="x"/> itself (the same array), else null.</summary>
    public GroupMoments? For(NdArray x) => ReferenceEquals(Source, x) ? this : null;
}
