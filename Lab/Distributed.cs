using System.CommandLine;
using Curvature.Training.Distributed;

namespace Curvature.Lab;

/// <summary>
/// <c>--distributed</c>: a verb started by an MPI launcher (<c>mpirun -np N ./lab train ... --distributed</c>) runs
/// data-parallel over the launch's ranks (<see cref="MpiCommunicator"/>); rank 0 prints and writes, the others
/// stay quiet. Without a launcher the option is one usage error. A failure on any rank ends every rank
/// (MPI_Abort) with the message prefixed by the rank, so no rank is left waiting in a collective.
/// </summary>
internal sealed class DistributedOptions
{
    public Option<bool> Enabled { get; } = new("--distributed")
    {
        Description = "Data-parallel over the ranks of an MPI launch (mpirun -np N ./lab ... --distributed; scripts/mpirun.sh): each rank takes its shard of every batch",
    };

    public Option<bool> SyncBatchNorm { get; } = new("--sync-bn")
    {
        Description = "With --distributed: training-mode BatchNorm normalizes by the whole batch's statistics, synchronized over the ranks (the one-process function); default: each rank's shard by its own, as PyTorch's DistributedDataParallel",
    };

    public void AddTo(Command c)
    {
        c.Options.Add(Enabled);
        c.Options.Add(SyncBatchNorm);
        Options.Validate(c, r =>
        {
            if (r.ValueOf(SyncBatchNorm) && !r.ValueOf(Enabled)) r.AddError("--sync-bn synchronizes BatchNorm over the ranks of a --distributed run; give --distributed too.");
        });
    }

    /// <summary>Whether BatchNorm is synchronized over the ranks.</summary>
    public bool Sync(ParseResult r) => r.GetValue(SyncBatchNorm);

    /// <summary>
    /// The ranks the verb runs on (one process without <c>--distributed</c>); on ranks other than 0,
    /// <paramref name="output"/> becomes silent.
    /// </summary>
    public ICommunicator Start(ParseResult r, ref TextWriter output)
    {
        if (!r.GetValue(Enabled)) return SingleProcess.Instance;
        if (!MpiCommunicator.Launched)
            throw new UsageException("--distributed needs an MPI launcher, and none started this process: run `mpirun -np N ./lab <verb> ... --distributed` " +
                                     "(scripts/mpirun.sh installs Open MPI and passes the options a root user on one machine needs).");
        var comm = MpiCommunicator.Start();
        Ranks.Active = comm;
        if (comm.Rank != 0) output = TextWriter.Null;
        output.WriteLine($"distributed: {comm.Describe}");
        return comm;
    }

    /// <summary>The ranks (<see cref="Start(ParseResult, ref TextWriter)"/>), then the thread count and device for them (<see cref="Cli.CommonOptions.Apply"/>).</summary>
    public (Engine.Device Device, ICommunicator Ranks) Start(ParseResult r, Cli.CommonOptions common, ref TextWriter output)
    {
        var ranks = Start(r, ref output);
        return (common.Apply(r, output, ranks), ranks);
    }

    /// <summary>Ranks started on this machine (Open MPI's local size), which share its cores.</summary>
    public static int RanksOnThisMachine =>
        int.TryParse(Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_LOCAL_SIZE"), out int n) && n > 0 ? n : 1;
}

/// <summary>The communicator a distributed verb started, for the error path (null: one process).</summary>
internal static class Ranks
{
    public static ICommunicator? Active { get; set; }

    /// <summary>"rank r: " in a distributed run of several ranks, else empty.</summary>
    public static string Prefix => Active is { Size: > 1 } c ? $"rank {c.Rank}: " : "";

    /// <summary>
    /// Ends every rank when one fails in a run of several ranks; returns the code otherwise. A stop by signal is
    /// not a failure: every rank stopped at the same step, and rank 0 must finish writing its checkpoint.
    /// </summary>
    public static int Finish(int code, TextWriter error)
    {
        if (code == 0 || code == Training.StopSignal.ExitCode || Active is not { Size: > 1 } c) return code;
        error.Flush();
        c.Abort(code);
        return code;
    }
}
