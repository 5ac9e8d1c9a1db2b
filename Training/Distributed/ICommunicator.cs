namespace Curvature.Training.Distributed;

/// <summary>
/// The collective operations data-parallel training and distributed curvature need, over a group of processes
/// (ranks 0 to <see cref="Size"/> − 1): an all-reduce of arrays in place, a broadcast, an all-gather of one
/// number per rank, a barrier and an abort. Every rank calls every collective in the same order; results of an
/// all-reduce must be the same bits on every rank (Open MPI's reductions of commutative sums are; the trainer checks
/// the weights' fingerprints at every checkpoint), so replicated state (weights, Lanczos vectors) stays replicated.
/// Arrays are host arrays: device data is staged through the host (NCCL would be the next step for GPUs).
/// </summary>
public interface ICommunicator
{
    /// <summary>This process's rank.</summary>
    int Rank { get; }
    /// <summary>The number of ranks.</summary>
    int Size { get; }
    /// <summary>What carries the messages, as reports print it (e.g. "Open MPI v4.1.4, 2 ranks").</summary>
    string Describe { get; }
    /// <summary>Collective calls, bytes and seconds so far (the cost reports quote).</summary>
    CollectiveTraffic Traffic { get; }

    /// <summary>Replaces <paramref name="values"/> on every rank by the element-wise sum over the ranks.</summary>
    void AllReduceSum(Span<double> values);
    /// <summary>Replaces <paramref name="values"/> on every rank by the element-wise sum over the ranks.</summary>
    void AllReduceSum(Span<float> values);
    /// <summary>Replaces <paramref name="values"/> on every rank by the element-wise maximum over the ranks.</summary>
    void AllReduceMax(Span<long> values);
    /// <summary>Copies <paramref name="data"/> from rank <paramref name="root"/> to every rank (the same length everywhere).</summary>
    void Broadcast(Span<byte> data, int root);
    /// <summary>Each rank's <paramref name="value"/>, in rank order.</summary>
    long[] AllGather(long value);
    /// <summary>Returns once every rank has called it.</summary>
    void Barrier();
    /// <summary>Ends every rank's process with <paramref name="exitCode"/> (a failure on one rank must not leave the others waiting in a collective).</summary>
    void Abort(int exitCode);
}

/// <summary>What a communicator has moved: collective calls, bytes each rank contributed, and seconds spent in them.</summary>
/// <param name="Calls">Collective calls.</param>
/// <param name="Bytes">Bytes of payload this rank passed in.</param>
/// <param name="Seconds">Wall-clock inside the calls (waiting for slower ranks included).</param>
public readonly record struct CollectiveTraffic(long Calls, long Bytes, double Seconds);

/// <summary>One process alone (the default): every collective is the identity and costs nothing.</summary>
public sealed class SingleProcess : ICommunicator
{
    /// <summary>The one instance.</summary>
    public static SingleProcess Instance { get; } = new();

    private SingleProcess() { }

    /// <inheritdoc/>
    public int Rank => 0;
    /// <inheritdoc/>
    public int Size => 1;
    /// <inheritdoc/>
    public string Describe => "one process";
    /// <inheritdoc/>
    public CollectiveTraffic Traffic => default;
    /// <inheritdoc/>
    public void AllReduceSum(Span<double> values) { }
    /// <inheritdoc/>
    public void AllReduceSum(Span<float> values) { }
    /// <inheritdoc/>
    public void AllReduceMax(Span<long> values) { }
    /// <inheritdoc/>
    public void Broadcast(Span<byte> data, int root)
    {
        if (root != 0) throw new ArgumentOutOfRangeException(nameof(root), root, "one process has only rank 0.");
    }
    /// <inheritdoc/>
    public long[] AllGather(long value) => [value];
    /// <inheritdoc/>
    public void Barrier() { }
    /// <inheritdoc/>
    public void Abort(int exitCode) => Environment.Exit(exitCode);
}
