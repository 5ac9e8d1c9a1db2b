using System.Diagnostics;

namespace Curvature.Lab;

/// <summary>Wall-clock timing: warm-up runs, then the median of repeated runs (robust on shared machines).</summary>
public static class Timing
{
    /// <summary>Median milliseconds of <paramref name="repeats"/> runs after <paramref name="warmup"/> unmeasured ones.</summary>
    public static double MedianMs(Action action, int warmup = 2, int repeats = 9)
    {
        for (int i = 0; i < warmup; i++) action();
        var times = new double[repeats];
        for (int i = 0; i < repeats; i++)
        {
            var sw = Stopwatch.StartNew();
            action();
            times[i] = sw.Elapsed.TotalMilliseconds;
        }
        Array.Sort(times);
        return repeats % 2 == 1 ? times[repeats / 2] : 0.5 * (times[repeats / 2 - 1] + times[repeats / 2]);
    }
}
