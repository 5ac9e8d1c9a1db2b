using System.Diagnostics;

namespace Curvature.Training;

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
        return Median(times);
    }

    /// <summary>
    /// Median milliseconds of each action, measured in interleaved rounds (each round runs every action
    /// once), so that a noisy neighbor slows all of them alike and their ratios stay meaningful.
    /// </summary>
    public static double[] InterleavedMedianMs(Action[] actions, int warmup = 2, int repeats = 9, Action? betweenRounds = null) =>
        InterleavedMs(actions, warmup, repeats, betweenRounds).Select(Median).ToArray();

    /// <summary>
    /// Every run's milliseconds, [action][round], measured as in <see cref="InterleavedMedianMs"/>: for a median and a
    /// minimum from the same runs (the minimum is the machine at its quietest). <paramref name="betweenRounds"/>, when
    /// given, runs untimed before every round (a benchmark of single kernels collects there, so that the arrays the
    /// last round dropped are back in <c>HostMemoryPool</c>, as they are in a training loop's steady state).
    /// </summary>
    public static double[][] InterleavedMs(Action[] actions, int warmup = 2, int repeats = 9, Action? betweenRounds = null)
    {
        for (int i = 0; i < warmup; i++) foreach (var a in actions) a();
        var times = new double[actions.Length][];
        for (int j = 0; j < actions.Length; j++) times[j] = new double[repeats];
        for (int i = 0; i < repeats; i++)
        {
            betweenRounds?.Invoke();
            for (int j = 0; j < actions.Length; j++)
            {
                var sw = Stopwatch.StartNew();
                actions[j]();
                times[j][i] = sw.Elapsed.TotalMilliseconds;
            }
        }
        return times;
    }

    /// <summary>The median of <paramref name="times"/>.</summary>
    public static double Median(double[] times)
    {
        var t = (double[])times.Clone();
        Array.Sort(t);
        int n = t.Length;
        return n % 2 == 1 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
    }
}
