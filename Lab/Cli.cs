using System.CommandLine;
using System.CommandLine.Invocation;
using Curvature.Training;
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
        public Option<ulong> Seed { get; } = new("--seed") { Description = "Seed of the counter-based random stream", DefaultValueFactory = _ => 0UL };
        public Option<string?> Json { get; } = new("--json") { Description = "Also write the results as JSON to this path (atomically)" };
        public Option<int> Threads { get; } = new("--threads") { Description = "CPU threads (default: all cores)", DefaultValueFactory = _ => Environment.ProcessorCount };

        public CommonOptions()
        {
            Threads.Validators.Add(r =>
            {
                if (r.GetValueOrDefault<int>() < 1) r.AddError($"--threads must be at least 1, got {r.GetValueOrDefault<int>()}.");
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
        public Engine.Device Apply(ParseResult r, TextWriter output)
        {
            Parallelism.MaxThreads = r.GetValue(Threads);
            var device = Engine.DeviceCatalog.Resolve(r.GetValue(Device)!, out var choice);
            output.WriteLine(device == Engine.CpuDevice.Instance ? $"{choice}, {Parallelism.MaxThreads} threads" : choice);
            return device;
        }
    }

    /// <summary>Runs the program with the given arguments and writers; returns the exit code.</summary>
    public static int Run(string[] args, TextWriter output, TextWriter error)
    {
        var root = new RootCommand("Curvature Lab: experiments on Hessian spectra and curvature-aware training.");
        root.Subcommands.Add(Compare.Command(output));
        root.Subcommands.Add(Eos.Command(output));
        root.Subcommands.Add(HvpCheck.Command(output));
        root.Subcommands.Add(Spectrum.Command(output));
        root.Subcommands.Add(Sweep.Command(output));
        root.Subcommands.Add(Train.Command(output));
        root.Subcommands.Add(Sample.Command(output));
        // Our handler below turns input errors into one line; System.CommandLine's own would print a stack trace.
        var config = new InvocationConfiguration { Output = output, Error = error, EnableDefaultExceptionHandler = false };
        var parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            if (parsed.Action is ParseErrorAction action) action.ShowHelp = false;
            parsed.Invoke(config);
            return UsageError;
        }
        try
        {
            return parsed.Invoke(config);
        }
        catch (Exception e) when (e is LabException or TrainingException or IOException or InvalidDataException or ArgumentException
                                   or NotSupportedException or Models.SafetensorsException or Models.StateDictException
                                   or Engine.DeviceMemoryException)
        {
            // Bad input found while running (a file, a shape): one message, no stack trace.
            error.WriteLine($"error: {e.Message}");
            return 1;
        }
    }
}

/// <summary>A failure with a message meant for the user (no stack trace).</summary>
public sealed class LabException(string message) : Exception(message);
