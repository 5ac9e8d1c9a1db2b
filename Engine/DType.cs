namespace Curvature.Engine;

/// <summary>Element types of an <see cref="NdArray"/>.</summary>
public enum DType
{
    /// <summary>IEEE 754 binary32, the default for training.</summary>
    Float32,
    /// <summary>IEEE 754 binary64, used for verification.</summary>
    Float64,
    /// <summary>Signed 64-bit integers, for indices and labels.</summary>
    Int64,
}

/// <summary>Properties of <see cref="DType"/> values.</summary>
public static class DTypeExtensions
{
    /// <summary>Bytes per element.</summary>
    public static int Size(this DType d) => d switch { DType.Float32 => 4, _ => 8 };

    /// <summary>True for the floating-point types.</summary>
    public static bool IsFloat(this DType d) => d != DType.Int64;

    /// <summary>The lower-case name used in messages and files (float32, float64, int64).</summary>
    public static string Name(this DType d) => d switch { DType.Float32 => "float32", DType.Float64 => "float64", _ => "int64" };

    /// <summary>The <see cref="DType"/> of a CLR element type.</summary>
    public static DType Of<T>() =>
        typeof(T) == typeof(float) ? DType.Float32 :
        typeof(T) == typeof(double) ? DType.Float64 :
        typeof(T) == typeof(long) ? DType.Int64 :
        throw new NotSupportedException($"Element type {typeof(T).Name} is not supported; expected float, double or long.");
}
