using System.Diagnostics;

namespace Curvature.Engine;

/// <summary>
/// A full garbage collection and the finalizers it queues: how the memory pools (<see cref="HostMemoryPool"/>,
/// <see cref="DeviceMemoryPool"/>) get back the buffers of arrays that became unreachable, whose storages return them
/// from their finalizers.
/// </summary>
internal static class FinalizingCollection
{
    /// <summary>Runs one and waits for its finalizers; returns the time taken in <see cref="Stopwatch"/> ticks.</summary>
    public static long Run()
    {
        long start = Stopwatch.GetTimestamp();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        return Stopwatch.GetTimestamp() - start;
    }
}
