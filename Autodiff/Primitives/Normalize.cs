using Curvature.Engine;

namespace Curvature.Autodiff.Primitives;

/// <summary>
/// x̂ = (x − μ)·r, r = 1/√(σ² + ε), with μ and the biased σ² taken per group over every axis outside the group
/// axes [start, end): BatchNorm's training-mode normalization (groups = channels) and LayerNorm's (groups = all
/// but the last axis) in one fused pass instead of eight element-wise ones. Its Jacobian is symmetric,
/// J = r·(I − 11ᵀ/m − x̂x̂ᵀ/m) per group (Ioffe and Szegedy 2015), so JVP: ẋ̂ = J·ẋ and VJP: x̄ = J·ȳ, both the
/// <see cref="NormalizeJacobian"/> primitive, whose own rules give exact second derivatives.
/// </summary>
public sealed class Normalize(int groupStart, int groupEnd, double epsilon) : Primitive
{
    /// <summary>First group axis.</summary>
    public int GroupStart { get; } = groupStart;
    /// <summary>One past the last group axis.</summary>
    public int GroupEnd { get; } = groupEnd;
    /// <summary>ε.</summary>
    public double Epsilon { get; } = epsilon;
    /// <inheritdoc/>
    public override string Name => "normalize";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => x[0].Normalize(GroupStart, GroupEnd, Epsilon);
    /// <inheritdoc/>
    protected internal override long Flops(NdArray[] x, NdArray y) => 5 * y.Size;
    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y) =>
        xDot[0] is null ? null : new NormalizeJacobian(GroupStart, GroupEnd, Epsilon).Apply(x[0], xDot[0]!);
    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed) =>
        [new NormalizeJacobian(GroupStart, GroupEnd, Epsilon).Apply(x[0], yBar)];

    /// <summary>The axes the statistics reduce over (all but the group axes).</summary>
    internal static int[] ReducedAxes(int rank, int start, int end) =>
        Enumerable.Range(0, rank).Where(i => i < start || i >= end).ToArray();
}
