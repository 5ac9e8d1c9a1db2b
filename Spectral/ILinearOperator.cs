using Curvature.Engine;

namespace Curvature.Spectral;

/// <summary>
/// A symmetric linear operator on flat vectors of length <see cref="Dimension"/> (for curvature: a model's
/// flattened parameters). The spectral methods only ever ask for products A·v.
/// </summary>
public interface ILinearOperator
{
    /// <summary>Length n of the vectors the operator acts on.</summary>
    long Dimension { get; }

    /// <summary>Element type of the vectors.</summary>
    DType DType { get; }

    /// <summary>Device holding the vectors.</summary>
    Device Device { get; }

    /// <summary>A·v for a vector of shape [n].</summary>
    NdArray Apply(NdArray v);
}
