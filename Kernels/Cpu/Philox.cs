using System.Numerics;

namespace Curvature.Kernels.Cpu;

/// <summary>
/// Philox4x32-10 (Salmon, Moraes, Dror and Shaw 2011, "Parallel random numbers: as easy as 1, 2, 3"): a
/// counter-based generator. Element i of a draw is a pure function of (key, counter = offset + i/4), so
/// every device and thread count gives the same stream.
/// </summary>
public static class Philox
{
    private const uint M0 = 0xD2511F53, M1 = 0xCD9E8D57, W0 = 0x9E3779B9, W1 = 0xBB67AE85;

    /// <summary>The four 32-bit words for the counter (offset, 0) under a 64-bit key.</summary>
    public static (uint, uint, uint, uint) Block(ulong key, ulong counter) =>
        Block((uint)counter, (uint)(counter >> 32), 0, 0, (uint)key, (uint)(key >> 32));

    /// <summary>Philox4x32-10 of a full 128-bit counter (c0…c3) under the key (k0, k1).</summary>
    public static (uint, uint, uint, uint) Block(uint c0, uint c1, uint c2, uint c3, uint k0, uint k1)
    {
        for (int round = 0; round < 10; round++)
        {
            ulong p0 = (ulong)M0 * c0, p1 = (ulong)M1 * c2;
            uint n0 = (uint)(p1 >> 32) ^ c1 ^ k0, n1 = (uint)p1, n2 = (uint)(p0 >> 32) ^ c3 ^ k1, n3 = (uint)p0;
            c0 = n0; c1 = n1; c2 = n2; c3 = n3;
            k0 += W0; k1 += W1;
        }
        return (c0, c1, c2, c3);
    }

    /// <summary>Fills <paramref name="dst"/> with 32-bit words number offset·4 … of the stream for <paramref name="key"/>.</summary>
    public static void Words(ulong key, ulong offset, Span<uint> dst)
    {
        for (int i = 0; i < dst.Length; i += 4)
        {
            var (a, b, c, d) = Block(key, offset + (ulong)(i / 4));
            dst[i] = a;
            if (i + 1 < dst.Length) dst[i + 1] = b;
            if (i + 2 < dst.Length) dst[i + 2] = c;
            if (i + 3 < dst.Length) dst[i + 3] = d;
        }
    }

    /// <summary>Uniform numbers in [0, 1) from 32-bit words (24 bits for float32, 32 for float64).</summary>
    public static void Uniform<T>(ulong key, ulong offset, Span<T> dst) where T : IFloatingPointIeee754<T>
    {
        var words = new uint[dst.Length];
        Words(key, offset, words);
        bool single = typeof(T) == typeof(float);
        for (int i = 0; i < dst.Length; i++)
            dst[i] = single ? T.CreateChecked((words[i] >> 8) * (1.0 / (1 << 24))) : T.CreateChecked(words[i] * (1.0 / 4294967296.0));
    }

    /// <summary>Standard normal numbers by the Box-Muller transform on pairs of words.</summary>
    public static void Normal<T>(ulong key, ulong offset, Span<T> dst) where T : IFloatingPointIeee754<T>
    {
        int pairs = (dst.Length + 1) / 2;
        var words = new uint[pairs * 2];
        Words(key, offset, words);
        for (int i = 0; i < pairs; i++)
        {
            double u1 = (words[2 * i] + 1.0) / 4294967297.0; // in (0, 1): log is finite
            double u2 = words[2 * i + 1] / 4294967296.0;
            double r = Math.Sqrt(-2.0 * Math.Log(u1));
            dst[2 * i] = T.CreateChecked(r * Math.Cos(2 * Math.PI * u2));
            if (2 * i + 1 < dst.Length) dst[2 * i + 1] = T.CreateChecked(r * Math.Sin(2 * Math.PI * u2));
        }
    }

    /// <summary>Integers uniform in [0, high) by Lemire's multiply-shift (bias below 2⁻³² · high).</summary>
    public static void Integers(ulong key, ulong offset, long high, Span<long> dst)
    {
        var words = new uint[dst.Length];
        Words(key, offset, words);
        for (int i = 0; i < dst.Length; i++) dst[i] = (long)(((ulong)words[i] * (ulong)high) >> 32);
    }

    /// <summary>Number of 128-bit counters a draw of <paramref name="count"/> words consumes.</summary>
    public static ulong CountersFor(long count) => (ulong)((count + 3) / 4);
}
