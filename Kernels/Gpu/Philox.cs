using System.Numerics;
using ILGPU;

namespace Curvature.Kernels.Gpu;

/// <summary>
/// The counter-based Philox4x32-10 stream of <see cref="Cpu.Philox"/> on the device: thread c computes the
/// block for counter offset + c and writes its four words' worth of outputs, so a draw gives the CPU's
/// numbers (the same words; uniform values bit for bit, normal values up to the device's log, cos and sin).
/// </summary>
public static class Philox
{
    private const uint M0 = 0xD2511F53, M1 = 0xCD9E8D57, W0 = 0x9E3779B9, W1 = 0xBB67AE85;

    /// <summary>Fills r with a draw: kind 0 uniform [0, 1), 1 standard normal (Box-Muller on word pairs), 2 integers in [0, high) (int64 views use <see cref="Integers"/>), 3 Rademacher ±1.</summary>
    public static void Fill<T, K>(ArrayView<T> r, RandomDraw d)
        where T : unmanaged, IFloatingPointIeee754<T> where K : struct, IScalarKind<T>
    {
        K k = default;
        int counters = (r.IntLength + 3) / 4;
        for (int c = KernelCache.First; c < counters; c += KernelCache.Step)
        {
            Block(d.Key, d.Offset + (ulong)c, out uint w0, out uint w1, out uint w2, out uint w3);
            int i = 4 * c;
            if (d.Kind == 1)
            {
                Normal(w0, w1, out double n0, out double n1);
                Normal(w2, w3, out double n2, out double n3);
                Put(r, i, k.From(n0)); Put(r, i + 1, k.From(n1)); Put(r, i + 2, k.From(n2)); Put(r, i + 3, k.From(n3));
            }
            else if (d.Kind == 3)
            {
                Put(r, i, Sign<T>(w0)); Put(r, i + 1, Sign<T>(w1)); Put(r, i + 2, Sign<T>(w2)); Put(r, i + 3, Sign<T>(w3));
            }
            else
            {
                Put(r, i, k.From(Uniform(w0, d.Single))); Put(r, i + 1, k.From(Uniform(w1, d.Single)));
                Put(r, i + 2, k.From(Uniform(w2, d.Single))); Put(r, i + 3, k.From(Uniform(w3, d.Single)));
            }
        }
    }

    /// <summary>Integers uniform in [0, high) by Lemire's multiply-shift, as the CPU draws them.</summary>
    public static void Integers(ArrayView<long> r, RandomDraw d)
    {
        int counters = (r.IntLength + 3) / 4;
        for (int c = KernelCache.First; c < counters; c += KernelCache.Step)
        {
            Block(d.Key, d.Offset + (ulong)c, out uint w0, out uint w1, out uint w2, out uint w3);
            int i = 4 * c;
            Put(r, i, Lemire(w0, d.High)); Put(r, i + 1, Lemire(w1, d.High)); Put(r, i + 2, Lemire(w2, d.High)); Put(r, i + 3, Lemire(w3, d.High));
        }
    }

    private static long Lemire(uint w, long high) => (long)(((ulong)w * (ulong)high) >> 32);

    private static T Sign<T>(uint w) where T : unmanaged, IFloatingPointIeee754<T> => ((ulong)w * 2UL) >> 32 == 0 ? -T.One : T.One;

    private static double Uniform(uint w, int single) => single != 0 ? (w >> 8) * (1.0 / 16777216.0) : w * (1.0 / 4294967296.0);

    private static void Normal(uint a, uint b, out double n0, out double n1)
    {
        double u1 = (a + 1.0) / 4294967297.0, u2 = b / 4294967296.0;
        double radius = Math.Sqrt(-2.0 * ScalarMath.Log(u1)), angle = 2 * Math.PI * u2;
        n0 = radius * ScalarMath.Cos(angle);
        n1 = radius * ScalarMath.Sin(angle);
    }

    private static void Put<T>(ArrayView<T> r, int i, T v) where T : unmanaged
    {
        if (i < r.IntLength) r[i] = v;
    }

    private static void Block(ulong key, ulong counter, out uint c0, out uint c1, out uint c2, out uint c3)
    {
        c0 = (uint)counter; c1 = (uint)(counter >> 32); c2 = 0; c3 = 0;
        uint k0 = (uint)key, k1 = (uint)(key >> 32);
        for (int round = 0; round < 10; round++)
        {
            ulong p0 = (ulong)M0 * c0, p1 = (ulong)M1 * c2;
            uint n0 = (uint)(p1 >> 32) ^ c1 ^ k0, n1 = (uint)p1, n2 = (uint)(p0 >> 32) ^ c3 ^ k1, n3 = (uint)p0;
            c0 = n0; c1 = n1; c2 = n2; c3 = n3;
            k0 += W0; k1 += W1;
        }
    }
}

/// <summary>Arguments of a <see cref="Philox"/> draw.</summary>
public struct RandomDraw
{
    /// <summary>The stream's key.</summary>
    public ulong Key;
    /// <summary>The first counter.</summary>
    public ulong Offset;
    /// <summary>0 uniform, 1 normal, 2 integers, 3 Rademacher.</summary>
    public int Kind;
    /// <summary>1 for float32 (uniform values from 24 bits).</summary>
    public int Single;
    /// <summary>Exclusive upper bound for integers.</summary>
    public long High;
}
