using System.Numerics;

namespace Curvature.Kernels;

/// <summary>
/// Conversions between an element type and float64 inside kernels. ILGPU compiles the generic-math operators
/// of float and double, but not <c>CreateTruncating</c> (it inspects <c>typeof</c>), so kernels take this
/// second type argument, a struct whose calls inline to a plain conversion.
/// </summary>
public interface IScalarKind<T> where T : unmanaged
{
    /// <summary>v converted (rounded or truncated) to T.</summary>
    T From(double v);

    /// <summary>v as float64.</summary>
    double ToDouble(T v);
}

/// <summary>float32 elements.</summary>
public readonly struct Float32Kind : IScalarKind<float>
{
    /// <inheritdoc/>
    public float From(double v) => (float)v;
    /// <inheritdoc/>
    public double ToDouble(float v) => v;
}

/// <summary>float64 elements.</summary>
public readonly struct Float64Kind : IScalarKind<double>
{
    /// <inheritdoc/>
    public double From(double v) => v;
    /// <inheritdoc/>
    public double ToDouble(double v) => v;
}

/// <summary>int64 elements (labels and indices); conversion truncates toward zero, as the CPU's cast does.</summary>
public readonly struct Int64Kind : IScalarKind<long>
{
    /// <inheritdoc/>
    public long From(double v) => (long)v;
    /// <inheritdoc/>
    public double ToDouble(long v) => v;
}
