using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Curvature.Kernels.Cpu;

/// <summary>
/// tanh for float32, vectorized: the rational approximation of Eigen's <c>ptanh_float</c> (an odd polynomial of
/// degree 13 over an even one of degree 6 on |x| ≤ 7.905, exactly ±1 beyond), three
/// times faster here than <c>TensorPrimitives.Tanh</c> (1M floats on one thread: 0.29 vs 0.86 ms, interleaved
/// medians) with an error of a few ulp. float64 keeps TensorPrimitives.Tanh.
/// </summary>
public static class FastTanh
{
    private const float Clamp = 7.90531110763549805f;
    private const float A1 = 4.89352455891786e-03f, A3 = 6.37261928875436e-04f, A5 = 1.48572235717979e-05f,
        A7 = 5.12229709037114e-08f, A9 = -8.60467152213735e-11f, A11 = 2.00018790482477e-13f, A13 = -2.76076847742355e-16f;
    private const float B0 = 4.89352518554385e-03f, B2 = 2.26843463243900e-03f, B4 = 1.18534705686654e-04f, B6 = 1.19825839466702e-06f;

    /// <summary>dst[i] = tanh(x[i]).</summary>
    public static void Apply(ReadOnlySpan<float> x, Span<float> dst)
    {
        int i = 0;
        ref float xs = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(x);
        ref float ds = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(dst);
        if (Vector512.IsHardwareAccelerated)
            for (; i + 16 <= x.Length; i += 16)
                Tanh(Vector512.LoadUnsafe(ref xs, (nuint)i)).StoreUnsafe(ref ds, (nuint)i);
        if (Vector256.IsHardwareAccelerated)
            for (; i + 8 <= x.Length; i += 8)
                Tanh(Vector256.LoadUnsafe(ref xs, (nuint)i)).StoreUnsafe(ref ds, (nuint)i);
        for (; i < x.Length; i++) dst[i] = Tanh(x[i]);
    }

    /// <summary>The same approximation on one value.</summary>
    public static float Tanh(float x)
    {
        if (float.IsNaN(x)) return x;
        if (x > Clamp) return 1f;
        if (x < -Clamp) return -1f;
        float x2 = x * x;
        float p = MathF.FusedMultiplyAdd(x2, A13, A11);
        p = MathF.FusedMultiplyAdd(x2, p, A9); p = MathF.FusedMultiplyAdd(x2, p, A7); p = MathF.FusedMultiplyAdd(x2, p, A5);
        p = MathF.FusedMultiplyAdd(x2, p, A3); p = MathF.FusedMultiplyAdd(x2, p, A1);
        float q = MathF.FusedMultiplyAdd(x2, B6, B4);
        q = MathF.FusedMultiplyAdd(x2, q, B2); q = MathF.FusedMultiplyAdd(x2, q, B0);
        return x * p / q;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Tanh(Vector512<float> x)
    {
        var nan = ~Vector512.Equals(x, x);
        var c = Vector512.Min(Vector512.Max(x, Vector512.Create(-Clamp)), Vector512.Create(Clamp));
        var x2 = c * c;
        var p = Vector512.FusedMultiplyAdd(x2, Vector512.Create(A13), Vector512.Create(A11));
        p = Vector512.FusedMultiplyAdd(x2, p, Vector512.Create(A9)); p = Vector512.FusedMultiplyAdd(x2, p, Vector512.Create(A7));
        p = Vector512.FusedMultiplyAdd(x2, p, Vector512.Create(A5)); p = Vector512.FusedMultiplyAdd(x2, p, Vector512.Create(A3));
        p = Vector512.FusedMultiplyAdd(x2, p, Vector512.Create(A1));
        var q = Vector512.FusedMultiplyAdd(x2, Vector512.Create(B6), Vector512.Create(B4));
        q = Vector512.FusedMultiplyAdd(x2, q, Vector512.Create(B2)); q = Vector512.FusedMultiplyAdd(x2, q, Vector512.Create(B0));
        var r = Vector512.ConditionalSelect(Vector512.GreaterThan(x, Vector512.Create(Clamp)), Vector512<float>.One, c * p / q);
        r = Vector512.ConditionalSelect(Vector512.LessThan(x, Vector512.Create(-Clamp)), -Vector512<float>.One, r);
        return Vector512.ConditionalSelect(nan, x, r);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Tanh(Vector256<float> x)
    {
        var nan = ~Vector256.Equals(x, x);
        var c = Vector256.Min(Vector256.Max(x, Vector256.Create(-Clamp)), Vector256.Create(Clamp));
        var x2 = c * c;
        var p = Vector256.FusedMultiplyAdd(x2, Vector256.Create(A13), Vector256.Create(A11));
        p = Vector256.FusedMultiplyAdd(x2, p, Vector256.Create(A9)); p = Vector256.FusedMultiplyAdd(x2, p, Vector256.Create(A7));
        p = Vector256.FusedMultiplyAdd(x2, p, Vector256.Create(A5)); p = Vector256.FusedMultiplyAdd(x2, p, Vector256.Create(A3));
        p = Vector256.FusedMultiplyAdd(x2, p, Vector256.Create(A1));
        var q = Vector256.FusedMultiplyAdd(x2, Vector256.Create(B6), Vector256.Create(B4));
        q = Vector256.FusedMultiplyAdd(x2, q, Vector256.Create(B2)); q = Vector256.FusedMultiplyAdd(x2, q, Vector256.Create(B0));
        var r = Vector256.ConditionalSelect(Vector256.GreaterThan(x, Vector256.Create(Clamp)), Vector256<float>.One, c * p / q);
        r = Vector256.ConditionalSelect(Vector256.LessThan(x, Vector256.Create(-Clamp)), -Vector256<float>.One, r);
        return Vector256.ConditionalSelect(nan, x, r);
    }
}
