namespace Curvature.Engine;

/// <summary>
/// Counts the copies between host memory and an accelerator's memory that the current thread makes while the
/// scope is open: reads (<see cref="Device.ToHost"/>, so also <see cref="NdArray.ToScalar"/> and a
/// <see cref="NdArray.Dot"/>, whose partial sums come back to the host) and writes (<see cref="Device.FromHost"/>).
/// A copy to or from pageable host memory waits for every kernel queued before it, so a training step that reads
/// more than the loss it logs stalls the GPU once per read; open a scope around a step to see what it reads.
/// The CPU device copies nothing and counts nothing. Scopes nest (each counts what happens while it is open) and
/// must be disposed on the thread that opened them, innermost first.
/// </summary>
/// <example><code>
/// using var transfers = HostTransfers.Count();
/// TrainStep();
/// Console.WriteLine($"{transfers.Reads} reads, {transfers.Writes} writes");
/// </code></example>
public sealed class HostTransfers : IDisposable
{
    [ThreadStatic] private static HostTransfers? innermost;
    private readonly HostTransfers? outer;
    private readonly int thread = Environment.CurrentManagedThreadId;
    private bool disposed;

    private HostTransfers(HostTransfers? outer) => this.outer = outer;

    /// <summary>Opens a scope that counts this thread's host transfers until it is disposed.</summary>
    public static HostTransfers Count() => innermost = new HostTransfers(innermost);

    /// <summary>Copies from the device to the host.</summary>
    public int Reads { get; private set; }

    /// <summary>Bytes copied from the device to the host.</summary>
    public long BytesRead { get; private set; }

    /// <summary>Copies from the host to the device.</summary>
    public int Writes { get; private set; }

    /// <summary>Bytes copied from the host to the device.</summary>
    public long BytesWritten { get; private set; }

    internal static void Read(long bytes)
    {
        for (var s = innermost; s is not null; s = s.outer)
        {
            s.Reads++;
            s.BytesRead += bytes;
        }
    }

    internal static void Write(long bytes)
    {
        for (var s = innermost; s is not null; s = s.outer)
        {
            s.Writes++;
            s.BytesWritten += bytes;
        }
    }

    /// <summary>Stops counting.</summary>
    public void Dispose()
    {
        if (disposed) return;
        if (Environment.CurrentManagedThreadId != thread || innermost != this)
            throw new InvalidOperationException("A HostTransfers scope must be disposed on the thread that opened it, innermost scope first.");
        innermost = outer;
        disposed = true;
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Reads} reads ({BytesRead:N0} bytes), {Writes} writes ({BytesWritten:N0} bytes)";
}
