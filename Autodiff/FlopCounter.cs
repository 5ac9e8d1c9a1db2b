namespace Curvature.Autodiff;

/// <summary>
/// Counts the floating-point operations of the primitives run inside <see cref="Count"/> scopes on this async
/// flow: a matrix product counts 2·m·n·k, every other primitive one operation per output element (a lower
/// bound for transcendental ones). Nested scopes count into the innermost one only, so curvature probes can be
/// counted apart from training steps. <see cref="ProductFlops"/> keeps the matrix products' and convolutions' share
/// apart: the work a GEMM does, whose time at the machine's SGEMM rate is a step's floor.
/// </summary>
public sealed class FlopCounter
{
    private static readonly AsyncLocal<FlopCounter?> current = new();
    private long flops, productFlops;

    /// <summary>Operations counted so far.</summary>
    public long Flops => Interlocked.Read(ref flops);

    /// <summary>The share of <see cref="Flops"/> done by matrix products and convolutions (2 per multiply-add).</summary>
    public long ProductFlops => Interlocked.Read(ref productFlops);

    internal static FlopCounter? Current => current.Value;

    internal void Add(long n, bool product)
    {
        Interlocked.Add(ref flops, n);
        if (product) Interlocked.Add(ref productFlops, n);
    }

    /// <summary>Counts into <paramref name="counter"/> until the returned scope is disposed.</summary>
    public static IDisposable Count(FlopCounter counter)
    {
        var previous = current.Value;
        current.Value = counter;
        return new Scope(previous);
    }

    private sealed class Scope(FlopCounter? previous) : IDisposable
    {
        public void Dispose() => current.Value = previous;
    }
}
