namespace Curvature.Kernels.Gpu;

/// <summary>
/// An output shape of up to six axes and, for up to three operands, the stride of each axis (0 where the
/// operand is broadcast), passed to kernels by value. Host code coalesces axes first, so six covers every
/// op the models use (attention's [B, H, T, T] is the widest).
/// </summary>
public struct StridedLayout
{
    /// <summary>Most axes a layout holds.</summary>
    public const int MaxRank = 6;

    /// <summary>Number of axes.</summary>
    public int Rank;
    /// <summary>Axis sizes.</summary>
    public int D0, D1, D2, D3, D4, D5;
    /// <summary>First operand's strides.</summary>
    public int A0, A1, A2, A3, A4, A5;
    /// <summary>Second operand's strides.</summary>
    public int B0, B1, B2, B3, B4, B5;
    /// <summary>Third operand's strides.</summary>
    public int C0, C1, C2, C3, C4, C5;

    /// <summary>A layout of <paramref name="dims"/> with up to three stride lists.</summary>
    public static StridedLayout Of(int[] dims, int[] a, int[]? b = null, int[]? c = null)
    {
        if (dims.Length > MaxRank) throw new NotSupportedException($"GPU kernels take at most {MaxRank} axes after merging contiguous ones; got a shape of {dims.Length} axes.");
        var l = new StridedLayout { Rank = dims.Length };
        for (int i = 0; i < dims.Length; i++)
        {
            l.Set(0, i, dims[i]);
            l.Set(1, i, a[i]);
            l.Set(2, i, b is null ? 0 : b[i]);
            l.Set(3, i, c is null ? 0 : c[i]);
        }
        return l;
    }

    private void Set(int which, int axis, int v)
    {
        switch (which * 8 + axis)
        {
            case 0: D0 = v; break; case 1: D1 = v; break; case 2: D2 = v; break; case 3: D3 = v; break; case 4: D4 = v; break; case 5: D5 = v; break;
            case 8: A0 = v; break; case 9: A1 = v; break; case 10: A2 = v; break; case 11: A3 = v; break; case 12: A4 = v; break; case 13: A5 = v; break;
            case 16: B0 = v; break; case 17: B1 = v; break; case 18: B2 = v; break; case 19: B3 = v; break; case 20: B4 = v; break; case 21: B5 = v; break;
            case 24: C0 = v; break; case 25: C1 = v; break; case 26: C2 = v; break; case 27: C3 = v; break; case 28: C4 = v; break; case 29: C5 = v; break;
        }
    }

    /// <summary>The three operands' element offsets for the row-major output index <paramref name="i"/>.</summary>
    public readonly void Offsets(int i, out int a, out int b, out int c)
    {
        a = 0; b = 0; c = 0;
        int rest = i;
        // Unrolled from the last axis: kernels cannot index a fixed buffer.
        if (Rank > 5) Axis(ref rest, D5, A5, B5, C5, ref a, ref b, ref c);
        if (Rank > 4) Axis(ref rest, D4, A4, B4, C4, ref a, ref b, ref c);
        if (Rank > 3) Axis(ref rest, D3, A3, B3, C3, ref a, ref b, ref c);
        if (Rank > 2) Axis(ref rest, D2, A2, B2, C2, ref a, ref b, ref c);
        if (Rank > 1) Axis(ref rest, D1, A1, B1, C1, ref a, ref b, ref c);
        if (Rank > 0) Axis(ref rest, D0, A0, B0, C0, ref a, ref b, ref c);
    }

    private static void Axis(ref int rest, int d, int sa, int sb, int sc, ref int a, ref int b, ref int c)
    {
        int q = rest / d, coordinate = rest - q * d;
        rest = q;
        a += coordinate * sa; b += coordinate * sb; c += coordinate * sc;
    }
}
