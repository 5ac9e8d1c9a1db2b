using Curvature.Engine;

namespace Curvature.Autodiff.Primitives;

/// <summary>
/// r = 1/√(σ² + ε) per group (biased variance over all axes outside [start, end), kept as size-1 axes), the
/// scale of <see cref="Normalize"/>. With x̂ = (x − μ)·r and dσ² = 2·C(ẋ, x) (<see cref="GroupCovariance"/>):
/// JVP ṙ = −r³·C(ẋ, x) (one read pass of ẋ and x, nothing written); VJP x̄ = −(r²·r̄/m)·x̂ (m elements per group),
/// both written with primitives.
/// </summary>
public sealed class GroupRstd(int groupStart, int groupEnd, double epsilon) : Primitive
{
    /// <summary>First group axis.</summary>
    public int GroupStart { get; } = groupStart;
    /// <summary>One past the last group axis.</summary>
    public int GroupEnd { get; } = groupEnd;
    /// <summary>ε.</summary>
    public double Epsilon { get; } = epsilon;
    /// <inheritdoc/>
    public override string Name => "group_rstd";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => x[0].GroupRstd(GroupStart, GroupEnd, Epsilon);
    /// <inheritdoc/>
    protected internal override long Flops(NdArray[] x, NdArray y) => 3 * x[0].Size;

    private Tensor Normalized(Tensor x) => new Normalize(GroupStart, GroupEnd, Epsilon).Apply(x);

    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y) =>
        xDot[0] is { } along ? -(y * y * y) * new GroupCovariance(GroupStart, GroupEnd).Apply(along, x[0]) : null;
    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed) =>
        [-(y * y * yBar * ((double)y.Shape.Size / x[0].Shape.Size)) * Normalized(x[0])];
}
