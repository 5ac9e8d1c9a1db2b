namespace Curvature.Kernels;

/// <summary>
/// How many cores the CPU kernels may use. Every kernel splits its work so that each output element is
/// computed by one thread in a fixed order, so results are bitwise identical for any thread count.
/// </summary>
public static class Parallelism
{
    private static int maxThreads = Environment.ProcessorCount;

    /// <summary>The largest number of threads a kernel uses (default: the processor count).</summary>
    public static int MaxThreads
    {
        get => maxThreads;
        set
        {
            if (value < 1) throw new ArgumentOutOfRangeException(nameof(value), value, "MaxThreads must be at least 1.");
            maxThreads = value;
        }
    }

    /// <summary>Runs <paramref name="body"/> for each index in [0, count), in parallel when it pays.</summary>
    /// <param name="count">Number of independent work items.</param>
    /// <param name="body">Work for one item; items must not write to overlapping memory.</param>
    public static void For(int count, Action<int> body)
    {
        if (count <= 0) return;
        if (count == 1 || maxThreads == 1)
        {
            for (int i = 0; i < count; i++) body(i);
            return;
        }
        Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = maxThreads }, body);
    }

    /// <summary>
    /// Splits [0, length) into chunks of a fixed size (independent of the thread count) and runs them in
    /// parallel when the range is long enough.
    /// </summary>
    public static void ForChunks(long length, int chunk, Action<long, int> body)
    {
        if (length <= 0) return;
        long chunks = (length + chunk - 1) / chunk;
        if (chunks == 1 || maxThreads == 1)
        {
            for (long c = 0; c < chunks; c++)
            {
                long start = c * chunk;
                body(start, (int)Math.Min(chunk, length - start));
            }
            return;
        }
        Parallel.For(0L, chunks, new ParallelOptions { MaxDegreeOfParallelism = maxThreads }, c =>
        {
            long start = c * chunk;
            body(start, (int)Math.Min(chunk, length - start));
        });
    }
}
