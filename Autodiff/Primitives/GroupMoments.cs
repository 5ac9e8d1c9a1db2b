using Curvature.Engine;

namespace Curvature.Autodiff.Primitives;

/// <summary>
/// The per-group mean and biased variance (float64, one value per group) that a forward pass computed from
/// <see cref="Source"/>: <see cref="NormalizeScaleShift"/> hands them to the <see cref="GroupMean"/> and
/// <see cref="GroupRstd"/> its rules build, so its backward pass does not read x again for statistics it already has.
/// In a Hessian-vector product the forward's JVP and the backward's rules both need the tangents μ̇ = mean ẋ and
/// ṙ = −r³·C(ẋ, x) along the same ẋ; the first to compute one remembers it here for the other (keyed by the tangent
/// tensor itself, so a nested level with its own tangents computes its own).
/// </summary>
internal sealed record GroupMoments(NdArray Source, NdArray Mean, NdArray Variance)
{
    private sealed record Remembered(Tensor Along, Tensor? MeanDot, Tensor? RstdDot);

    private Remembered? remembered;

    /// <summary>These moments when they were computed from <paramref name="x"/> itself (the same array), else null.</summary>
    public GroupMoments? For(NdArray x) => ReferenceEquals(Source, x) ? this : null;

    /// <summary>μ̇ along <paramref name="xDot"/>: the remembered tensor, or <paramref name="compute"/>'s, then remembered.</summary>
    public Tensor MeanTangent(Tensor xDot, Func<Tensor> compute)
    {
        var known = remembered;
        if (known is not null && ReferenceEquals(known.Along, xDot) && known.MeanDot is { } m) return m;
        var result = compute();
        remembered = known is not null && ReferenceEquals(known.Along, xDot) ? known with { MeanDot = result } : new Remembered(xDot, result, null);
        return result;
    }

    /// <summary>ṙ along <paramref name="xDot"/>: the remembered tensor, or <paramref name="compute"/>'s, then remembered.</summary>
    public Tensor RstdTangent(Tensor xDot, Func<Tensor> compute)
    {
        var known = remembered;
        if (known is not null && ReferenceEquals(known.Along, xDot) && known.RstdDot is { } r) return r;
        var result = compute();
        remembered = known is not null && ReferenceEquals(known.Along, xDot) ? known with { RstdDot = result } : new Remembered(xDot, null, result);
        return result;
    }
}
