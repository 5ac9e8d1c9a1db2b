using System.Collections.Concurrent;
using System.Diagnostics;

namespace Curvature.Autodiff;

/// <summary>
/// Where the time goes: inside a <see cref="Record"/> scope on this async flow, every primitive's forward
/// computation (the only place numbers are computed: JVPs and VJPs are themselves primitives) adds its
/// wall-clock time, call count and FLOPs under its name. Meant for benchmarks and the Lab; outside a scope it
/// costs one null check per primitive.
/// </summary>
public sealed class OpProfile
{
    private static readonly AsyncLocal<OpProfile?> current = new();
    private readonly ConcurrentDictionary<string, Entry> entries = new();

    internal static OpProfile? Current => current.Value;

    /// <summary>One primitive's totals.</summary>
    public sealed class Entry
    {
        internal long ticks, calls, flops;
        /// <summary>Milliseconds spent.</summary>
        public double Milliseconds => Interlocked.Read(ref ticks) * 1000.0 / Stopwatch.Frequency;
        /// <summary>Calls.</summary>
        public long Calls => Interlocked.Read(ref calls);
        /// <summary>Floating-point operations (as <see cref="FlopCounter"/> counts them).</summary>
        public long Flops => Interlocked.Read(ref flops);
    }

    /// <summary>Totals by primitive name, most time first.</summary>
    public IReadOnlyList<(string Name, Entry Totals)> ByTime() =>
        entries.OrderByDescending(e => e.Value.Milliseconds).Select(e => (e.Key, e.Value)).ToArray();

    internal void Add(string name, long ticks, long flops)
    {
        var e = entries.GetOrAdd(name, _ => new Entry());
        Interlocked.Add(ref e.ticks, ticks);
        Interlocked.Increment(ref e.calls);
        Interlocked.Add(ref e.flops, flops);
    }

    /// <summary>Records into <paramref name="profile"/> until the returned scope is disposed.</summary>
    public static IDisposable Record(OpProfile profile)
    {
        var previous = current.Value;
        current.Value = profile;
        return new Scope(previous);
    }

    private sealed class Scope(OpProfile? previous) : IDisposable
    {
        public void Dispose() => current.Value = previous;
    }
}
