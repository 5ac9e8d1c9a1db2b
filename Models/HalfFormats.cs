namespace Curvature.Models;

/// <summary>
/// The 16-bit float formats of PyTorch files. F16 is IEEE 754 binary16 (1 sign, 5 exponent, 10 fraction bits);
/// BF16 ("brain float") is the top half of a binary32 (1, 8, 7). Widening to float32 is exact for both; narrowing
/// rounds to nearest with ties to even, keeps NaN a NaN, and (F16 only) overflows to ±∞ past 65504.
/// </summary>
public static class HalfFormats
{
    /// <summary>binary16 bits → float32 values (exact).</summary>
    public static float[] WidenF16(ReadOnlySpan<ushort> bits)
    {
        var r = new float[bits.Length];
        for (int i = 0; i < r.Length; i++) r[i] = (float)BitConverter.UInt16BitsToHalf(bits[i]);
        return r;
    }

    /// <summary>bfloat16 bits → float32 values (exact: the bits are the float's top half).</summary>
    public static float[] WidenBF16(ReadOnlySpan<ushort> bits)
    {
        var r = new float[bits.Length];
        for (int i = 0; i < r.Length; i++) r[i] = BitConverter.Int32BitsToSingle(bits[i] << 16);
        return r;
    }

    /// <summary>float32 → binary16 bits, rounded to nearest, ties to even (the runtime's conversion).</summary>
    public static ushort[] NarrowF16(ReadOnlySpan<float> values)
    {
        var r = new ushort[values.Length];
        for (int i = 0; i < r.Length; i++) r[i] = BitConverter.HalfToUInt16Bits((Half)values[i]);
        return r;
    }

    /// <summary>float32 → bfloat16 bits, rounded to nearest, ties to even; a NaN stays a (quiet) NaN.</summary>
    public static ushort[] NarrowBF16(ReadOnlySpan<float> values)
    {
        var r = new ushort[values.Length];
        for (int i = 0; i < r.Length; i++)
        {
            uint b = BitConverter.SingleToUInt32Bits(values[i]);
            if (float.IsNaN(values[i])) { r[i] = (ushort)((b >> 16) | 0x40); continue; }
            // Add half an ulp of the result, less one when the kept part is even: round to nearest, ties to even.
            r[i] = (ushort)((b + 0x7FFF + ((b >> 16) & 1)) >> 16);
        }
        return r;
    }
}
