using System.CommandLine;
using System.CommandLine.Invocation;
using Curvature.Training;
using Curvature.Training.Distributed;
using Curvature.Kernels;

namespace Curvature.Lab;

/// <summary>
/// The command line: one verb per experiment. Bad usage (an unknown option, a bad value) ends in one error,
/// a typo suggestion where there is one, and exit code 2 before any work; a failure while running ends in
/// one message and exit code 1.
/// </summary>
public static class Cli
{
    /// <summary>Exit code for bad usage.</summary>
    public const int UsageError = 2;

    /// <summary>Options every verb takes.</summary>
    internal sealed class CommonOptions
    {
        public Option<string> Device { get; } = new("--device")
        {
            Description = "Where to compute: auto (CUDA when present, else CPU), cpu, cuda[:N], opencl[:N], or ilgpu-cpu (the GPU kernels on ILGPU's CPU accelerator; for testing)",
            DefaultValueFactory = _ => "auto",
        };
        public Option<ulong> Seed { get; } = Options.Seed("--seed", "Seed of the counter-based random stream");
        public Option<string?> Json { get; } = new("--json") { Description = "Also write the results as JSON to this path (atomically)" };
        public Option<int> Threads { get; } = Options.Int("--threads", "CPU threads (default: all cores)", Environment.ProcessorCount, max: 1024);

        public CommonOptions()
        {
            Device.Validators.Add(r =>
            {
                string name = r.GetValueOrDefault<string>() ?? "";
                if (!Engine.DeviceCatalog.IsDeviceName(name)) r.AddError($"--device: '{name}' is not a device name; expected one of {Engine.DeviceCatalog.Choices}.");
            });
        }

        public void AddTo(Command c)
        {
            c.Options.Add(Device); c.Options.Add(Seed); c.Options.Add(Json); c.Options.Add(Threads);
        }

        /// <summary>
        /// Applies the thread count and resolves the device, saying which was chosen; a device that is not
        /// present is an error listing the devices found (never a silent fallback).
        /// </summary>
        public Engine.Device Apply(ParseResult r, TextWriter output, ICommunicator? ranks = null)
        {
            if (r.GetValue(Json) is { } json && (ranks?.Rank ?? 0) == 0) RequireWritableFile(json, "--json");
            // Ranks started on one machine share its cores: by default each takes its part of them.
            bool implicitThreads = r.GetResult(Threads) is null or { Implicit: true };
            Parallelism.MaxThreads = ranks is { Size: > 1 } && implicitThreads
                ? Math.Max(1, Environment.ProcessorCount / DistributedOptions.RanksOnThisMachine) : r.GetValue(Threads);
            var device = Engine.DeviceCatalog.Resolve(r.GetValue(Device)!, out var choice);
            output.WriteLine(device == Engine.CpuDevice.Instance ? $"{choice}, {Parallelism.MaxThreads} threads" : choice);
            return device;
        }
    }

    /// <summary>
    /// Checks, before any work, that <paramref name="path"/> can be written as a file: not a folder, its folder
    /// present and writable (a trial temporary file is created and deleted there).
    /// </summary>
    internal static void RequireWritableFile(string path, string option)
    {
        if (Directory.Exists(path)) throw new LabException($"{option} {path} is a folder; expected a file path.");
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        if (!Directory.Exists(dir)) throw new LabException($"{option} {path}: the folder {dir} does not exist.");
        var probe = Path.Combine(dir, $".{Path.GetFileName(path)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try { using (File.Create(probe, 1, FileOptions.DeleteOnClose)) { } }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new LabException($"{option} {path}: the folder {dir} is not writable ({e.Message}).");
        }
    }

    /// <summary>Runs the program with the given arguments and writers; returns the exit code.</summary>
    public static int Run(string[] args, TextWriter output, TextWriter error)
    {
        var root = new RootCommand("Curvature Lab: experiments on Hessian spectra and curvature-aware training.");
        root.Subcommands.Add(Batch.Command(output));
        root.Subcommands.Add(Compare.Command(output));
        root.Subcommands.Add(Eos.Command(output));
        root.Subcommands.Add(HvpCheck.Command(output));
        root.Subcommands.Add(Noise.Command(output));
        root.Subcommands.Add(Spectrum.Command(output));
        root.Subcommands.Add(Sweep.Command(output));
        root.Subcommands.Add(Train.Command(output));
        root.Subcommands.Add(Sample.Command(output));
        root.Subcommands.Add(Sde.Command(output));
        // Our handler below turns input errors into one line; System.CommandLine's own would print a stack trace.
        var config = new InvocationConfiguration { Output = output, Error = error, EnableDefaultExceptionHandler = false };
        ParseResult parsed;
        try { parsed = root.Parse(args); }
        catch (Exception e)
        {
            // A validator that met a value it did not expect: still a usage error, still one line.
            error.WriteLine($"error: {FirstLine(e.Message)}");
            return UsageError;
        }
        if (parsed.Errors.Count > 0)
        {
            if (parsed.Action is ParseErrorAction action) action.ShowHelp = false;
            parsed.Invoke(config);
            return UsageError;
        }
        // SIGINT/SIGTERM while a run trains: finish the step, checkpoint, exit 130/143 (a second signal aborts).
        // Over several ranks, rank 0 speaks for all: they stop at the same step and it writes the checkpoint.
        StopSignal.Install(signal => { if (Ranks.Active is not { Rank: > 0 }) error.WriteLine($"{signal} received: stopping after this step and writing a checkpoint (send it again to abort)"); },
                           signal => error.WriteLine($"{Ranks.Prefix}{signal} received again: aborting; the last checkpoint on disk is kept"));
        return Ranks.Finish(Invoke(parsed, config, error), error);
    }

    private static int Invoke(ParseResult parsed, InvocationConfiguration config, TextWriter error)
    {
        try
        {
            return parsed.Invoke(config);
        }
        catch (TrainingInterruptedException e)
        {
            if (Ranks.Active is not { Rank: > 0 }) error.WriteLine(e.Message);
            return StopSignal.ExitCode;
        }
        catch (UsageException e)
        {
            error.WriteLine($"{Ranks.Prefix}error: {e.Message}");
            return UsageError;
        }
        catch (Exception e) when (e is LabException or TrainingException or IOException or InvalidDataException or ArgumentException
                                   or NotSupportedException or UnauthorizedAccessException or Models.SafetensorsException or Models.StateDictException
                                   or Engine.DeviceMemoryException or OptimizerSpecException)
        {
            // Bad input found while running (a file, a shape): one message, no stack trace.
            error.WriteLine($"{Ranks.Prefix}error: {FirstLine(e.Message)}");
            return 1;
        }
        catch (Exception e)
        {
            // The last resort: a failure nobody anticipated is still one line (and a bug to report), never a stack trace.
            error.WriteLine($"{Ranks.Prefix}error: {FirstLine(e.Message)} ({e.GetType().Name}; this is a bug in the Lab, please report it with the command line)");
            return 1;
        }
    }

    private static string FirstLine(string message) => message.Split('\n')[0].Trim();
}

/// <summary>A usage error found after parsing (a product of options out of range): exit code 2, one line.</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>A failure with a message meant for the user (no stack trace).</summary>
public sealed class LabException(string message) : Exception(message);
