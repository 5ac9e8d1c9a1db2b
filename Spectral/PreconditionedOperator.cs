using Curvature.Engine;

namespace Curvature.Spectral;

/// <summary>
/// P^(−½)·A·P^(−½) for a diagonal preconditioner P (given as d = P^(−½), flat): symmetric when A is, with the eigenvalues
/// of P⁻¹A, so Lanczos on it gives the preconditioned sharpness λmax(P⁻¹H) of an adaptive method (Cohen et al. 2022).
/// </summary>
public sealed class PreconditionedOperator(ILinearOperator inner, NdArray inverseSqrtPreconditioner) : ILinearOperator
{
    private readonly NdArray d = inverseSqrtPreconditioner.Shape == new Shape((int)inner.Dimension) ? inverseSqrtPreconditioner
        : throw new ArgumentException($"preconditioned operator: d has shape {inverseSqrtPreconditioner.Shape}; expected [{inner.Dimension}].");

    /// <inheritdoc/>
    public long Dimension => inner.Dimension;

    /// <inheritdoc/>
    public DType DType => inner.DType;

    /// <inheritdoc/>
    public Device Device => inner.Device;

    /// <inheritdoc/>
    public NdArray Apply(NdArray v) => d * inner.Apply(d * v);
}
