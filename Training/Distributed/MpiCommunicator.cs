using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

namespace Curvature.Training.Distributed;

/// <summary>
/// <see cref="ICommunicator"/> over MPI's world communicator, bound directly to Open MPI's C library
/// (<c>libmpi.so.40</c>, Debian's <c>openmpi-bin</c>) through function pointers: MPI.NET 1.4, the package NuGet
/// serves, binds Microsoft's MS-MPI (<c>msmpi.dll</c>, integer handles) and does not load on Linux. Open MPI's
/// handles (MPI_COMM_WORLD, MPI_DOUBLE, MPI_SUM) are the addresses of exported objects, read once with
/// <see cref="NativeLibrary.GetExport"/>. MPI is started with MPI_THREAD_SERIALIZED (collectives come from one
/// thread at a time, not always the same one) and finalized when the process exits. Errors keep MPI's default
/// handler, MPI_ERRORS_ARE_FATAL: a failed collective ends the whole job with the launcher's message naming the rank.
/// </summary>
public sealed unsafe class MpiCommunicator : ICommunicator
{
    /// <summary>The library names tried, in order.</summary>
    public static readonly string[] LibraryNames = ["libmpi.so.40", "libmpi.so"];

    private const int ThreadSerialized = 2;
    private const int MaxCount = 1 << 28;
    private static readonly void* InPlace = (void*)1;
    private static MpiCommunicator? started;
    private static readonly object gate = new();

    private readonly delegate* unmanaged<void*, void*, int, nint, nint, nint, int> allreduce;
    private readonly delegate* unmanaged<void*, int, nint, int, nint, int> bcast;
    private readonly delegate* unmanaged<void*, int, nint, void*, int, nint, nint, int> allgather;
    private readonly delegate* unmanaged<nint, int> barrier;
    private readonly delegate* unmanaged<nint, int, int> abort;
    private readonly delegate* unmanaged<int> finalize;
    private readonly nint world, float64, float32, int64, bytes, sum, max;
    private long calls, payload;
    private readonly Stopwatch clock = new();

    /// <inheritdoc/>
    public int Rank { get; }
    /// <inheritdoc/>
    public int Size { get; }
    /// <inheritdoc/>
    public string Describe { get; }
    /// <inheritdoc/>
    public CollectiveTraffic Traffic => new(calls, payload, clock.Elapsed.TotalSeconds);

    /// <summary>True when this process was started by an MPI launcher (Open MPI's <c>mpirun</c>, or a PMI/PMIx one such as Slurm's <c>srun</c>).</summary>
    public static bool Launched =>
        Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_SIZE") is not null || Environment.GetEnvironmentVariable("PMIX_RANK") is not null
        || Environment.GetEnvironmentVariable("PMI_SIZE") is not null;

    /// <summary>
    /// MPI for this process: started on the first call (MPI starts once per process), the same object after.
    /// Throws <see cref="TrainingException"/> when no launcher started the process or Open MPI's library is missing.
    /// </summary>
    public static MpiCommunicator Start()
    {
        lock (gate)
        {
            if (started is not null) return started;
            if (!Launched)
                throw new TrainingException("--distributed needs an MPI launcher, and none started this process (OMPI_COMM_WORLD_SIZE, PMIX_RANK and PMI_SIZE are unset): "
                                            + "run it as `mpirun -np N <command> --distributed` (scripts/mpirun.sh installs Open MPI and does this).");
            nint lib = 0;
            foreach (var name in LibraryNames)
                if (NativeLibrary.TryLoad(name, out lib)) break;
            if (lib == 0)
                throw new TrainingException($"--distributed: Open MPI's library ({string.Join(" or ", LibraryNames)}) could not be loaded; install it with `apt-get install openmpi-bin` (scripts/mpirun.sh does).");
            started = new MpiCommunicator(lib);
            AppDomain.CurrentDomain.ProcessExit += (_, _) => started.Finish();
            return started;
        }
    }

    private MpiCommunicator(nint lib)
    {
        nint Export(string symbol) => NativeLibrary.TryGetExport(lib, symbol, out var a) ? a
            : throw new TrainingException($"--distributed: the MPI library has no '{symbol}'; this binding needs Open MPI (its handles are exported objects), found another MPI.");
        world = Export("ompi_mpi_comm_world");
        float64 = Export("ompi_mpi_double");
        float32 = Export("ompi_mpi_float");
        int64 = Export("ompi_mpi_int64_t");
        bytes = Export("ompi_mpi_byte");
        sum = Export("ompi_mpi_op_sum");
        max = Export("ompi_mpi_op_max");
        allreduce = (delegate* unmanaged<void*, void*, int, nint, nint, nint, int>)Export("MPI_Allreduce");
        bcast = (delegate* unmanaged<void*, int, nint, int, nint, int>)Export("MPI_Bcast");
        allgather = (delegate* unmanaged<void*, int, nint, void*, int, nint, nint, int>)Export("MPI_Allgather");
        barrier = (delegate* unmanaged<nint, int>)Export("MPI_Barrier");
        abort = (delegate* unmanaged<nint, int, int>)Export("MPI_Abort");
        finalize = (delegate* unmanaged<int>)Export("MPI_Finalize");
        var initialized = (delegate* unmanaged<int*, int>)Export("MPI_Initialized");
        var init = (delegate* unmanaged<int*, byte***, int, int*, int>)Export("MPI_Init_thread");
        var rank = (delegate* unmanaged<nint, int*, int>)Export("MPI_Comm_rank");
        var size = (delegate* unmanaged<nint, int*, int>)Export("MPI_Comm_size");
        var version = (delegate* unmanaged<byte*, int*, int>)Export("MPI_Get_library_version");

        int flag = 0, provided = 0, r = 0, s = 0, length = 0;
        Check(initialized(&flag), "MPI_Initialized");
        if (flag == 0) Check(init(null, null, ThreadSerialized, &provided), "MPI_Init_thread");
        Check(rank(world, &r), "MPI_Comm_rank");
        Check(size(world, &s), "MPI_Comm_size");
        (Rank, Size) = (r, s);
        var text = new byte[8192];
        fixed (byte* t = text) Check(version(t, &length), "MPI_Get_library_version");
        string library = Encoding.ASCII.GetString(text, 0, Math.Clamp(length, 0, text.Length)).Split(',', '\n')[0].Trim();
        Describe = $"{library}, {Size} rank{(Size == 1 ? "" : "s")}";
    }

    private bool finished;

    private void Finish()
    {
        if (finished) return;
        finished = true;
        finalize();
    }

    private static void Check(int code, string call)
    {
        if (code != 0) throw new TrainingException($"{call} failed with MPI error {code}.");
    }

    private void Count(long byteCount)
    {
        calls++;
        payload += byteCount;
    }

    /// <inheritdoc/>
    public void AllReduceSum(Span<double> values) => AllReduce(values, float64, sum);

    /// <inheritdoc/>
    public void AllReduceSum(Span<float> values) => AllReduce(values, float32, sum);

    /// <inheritdoc/>
    public void AllReduceMax(Span<long> values) => AllReduce(values, int64, max);

    /// <summary>MPI_Allreduce in place, in chunks of at most 2²⁸ elements (MPI counts are ints).</summary>
    private void AllReduce<T>(Span<T> values, nint type, nint op) where T : unmanaged
    {
        Count((long)values.Length * sizeof(T));
        clock.Start();
        try
        {
            fixed (T* p = values)
                for (int at = 0; at < values.Length; at += MaxCount)
                    Check(allreduce(InPlace, p + at, Math.Min(MaxCount, values.Length - at), type, op, world), "MPI_Allreduce");
        }
        finally { clock.Stop(); }
    }

    /// <inheritdoc/>
    public void Broadcast(Span<byte> data, int root)
    {
        if (root < 0 || root >= Size) throw new ArgumentOutOfRangeException(nameof(root), root, $"the root must be a rank, 0 to {Size - 1}.");
        Count(data.Length);
        clock.Start();
        try
        {
            fixed (byte* p = data)
                for (int at = 0; at < data.Length; at += MaxCount)
                    Check(bcast(p + at, Math.Min(MaxCount, data.Length - at), bytes, root, world), "MPI_Bcast");
        }
        finally { clock.Stop(); }
    }

    /// <inheritdoc/>
    public long[] AllGather(long value)
    {
        var all = new long[Size];
        Count(sizeof(long));
        clock.Start();
        try
        {
            fixed (long* p = all) Check(allgather(&value, 1, int64, p, 1, int64, world), "MPI_Allgather");
        }
        finally { clock.Stop(); }
        return all;
    }

    /// <inheritdoc/>
    public void Barrier()
    {
        Count(0);
        clock.Start();
        try { Check(barrier(world), "MPI_Barrier"); }
        finally { clock.Stop(); }
    }

    /// <inheritdoc/>
    public void Abort(int exitCode)
    {
        abort(world, exitCode);
        Environment.Exit(exitCode);
    }
}
