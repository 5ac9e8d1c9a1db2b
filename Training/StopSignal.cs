using System.Runtime.InteropServices;

namespace Curvature.Training;

/// <summary>
/// A graceful stop on SIGINT (Ctrl-C) or SIGTERM while a <see cref="Trainer"/> runs: the first signal lets the
/// current step finish, the trainer writes its checkpoint and throws <see cref="TrainingInterruptedException"/>;
/// a second signal, or any signal while no trainer runs, takes the default action (the process ends). The host
/// (the command line) calls <see cref="Install"/> once; without it signals keep their default action.
/// </summary>
public static class StopSignal
{
    private static readonly CancellationTokenSource Source = new();
    private static readonly object Gate = new();
    private static PosixSignalRegistration[]? registrations;
    private static Action<PosixSignal>? onStop, onAbort;
    private static int listening;

    /// <summary>Canceled once a stop was asked for; trainers check it after every step.</summary>
    public static CancellationToken Token => Source.Token;

    /// <summary>The signal that asked for the stop, or null.</summary>
    public static PosixSignal? Received { get; private set; }

    /// <summary>The conventional exit code for the signal received: 128 + its number (130 for SIGINT, 143 for SIGTERM).</summary>
    public static int ExitCode => Received == PosixSignal.SIGTERM ? 143 : 130;

    /// <summary>
    /// Handles SIGINT and SIGTERM from now on; <paramref name="stopping"/> is told when a stop is asked for and
    /// <paramref name="aborting"/> when a second signal ends the process (say so to the user).
    /// </summary>
    public static void Install(Action<PosixSignal>? stopping = null, Action<PosixSignal>? aborting = null)
    {
        lock (Gate)
        {
            onStop = stopping;
            onAbort = aborting;
            registrations ??= [PosixSignalRegistration.Create(PosixSignal.SIGINT, Handle), PosixSignalRegistration.Create(PosixSignal.SIGTERM, Handle)];
        }
    }

    /// <summary>Marks a run as listening for the length of the returned scope.</summary>
    internal static IDisposable Listen()
    {
        Interlocked.Increment(ref listening);
        return new Scope();
    }

    private static void Handle(PosixSignalContext context)
    {
        // Nothing to checkpoint: the default action (end the process) stands.
        if (Volatile.Read(ref listening) == 0) return;
        if (Source.IsCancellationRequested)
        {
            // A second signal: abort now, without waiting for the step (the last checkpoint on disk stays as it is).
            context.Cancel = true;
            onAbort?.Invoke(context.Signal);
            Environment.Exit(context.Signal == PosixSignal.SIGTERM ? 143 : 130);
        }
        context.Cancel = true;
        Received = context.Signal;
        Source.Cancel();
        onStop?.Invoke(context.Signal);
    }

    private sealed class Scope : IDisposable
    {
        private int disposed;
        public void Dispose()
        {
            if (Interlocked.Exchange(ref disposed, 1) == 0) Interlocked.Decrement(ref listening);
        }
    }
}

/// <summary>A run stopped on request after a whole step, its checkpoint written.</summary>
/// <param name="stepsDone">Steps done (the checkpoint's step).</param>
/// <param name="checkpoint">The checkpoint written, or null when the run has no folder.</param>
public sealed class TrainingInterruptedException(int stepsDone, string? checkpoint)
    : Exception(checkpoint is null ? $"interrupted at step {stepsDone}; the run has no folder, so nothing was written"
                                   : $"interrupted at step {stepsDone}; checkpoint written; continue with --resume")
{
    /// <summary>Steps done.</summary>
    public int StepsDone { get; } = stepsDone;
    /// <summary>The checkpoint written, or null.</summary>
    public string? Checkpoint { get; } = checkpoint;
}
