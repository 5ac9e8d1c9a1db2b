using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace Curvature.Bench;

/// <summary>
/// PyTorch timed in the same run: perf/torch/bench.py in serve mode (Debian's python3-torch), a child process
/// that times one round of a model's forward, gradient, HVP and train step whenever asked, so the Bench can
/// interleave PyTorch's rounds with the engine's. Its OpenBLAS gets the same kernel choice as the Bench's own.
/// </summary>
internal sealed class TorchBaseline : IDisposable
{
    private readonly Process process;

    private TorchBaseline(Process process) => this.process = process;

    /// <summary>torch version, threads and the BLAS it loaded, as the worker reports them.</summary>
    public string Description { get; private set; } = "";

    /// <summary>Starts the worker on <paramref name="threads"/> threads; throws with what to install when it cannot.</summary>
    public static TorchBaseline Start(int threads)
    {
        var script = OpenBlas.FindRepositoryFile(Path.Combine("perf", "torch", "bench.py"))
            ?? throw new FileNotFoundException("perf/torch/bench.py not found above the working directory or the Bench's folder.");
        // Debian's python3-torch lives in the system Python, which a pyenv or venv python3 on PATH does not see.
        string python = File.Exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
        var info = new ProcessStartInfo(python, [script, "--threads", threads.ToString(CultureInfo.InvariantCulture), "--serve"])
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = false, UseShellExecute = false,
        };
        OpenBlas.ApplyTo(info);
        Process process;
        try { process = Process.Start(info)!; }
        catch (System.ComponentModel.Win32Exception e) { throw new InvalidOperationException($"--torch: could not start {python}: {e.Message}"); }
        var worker = new TorchBaseline(process);
        var answer = worker.Ask("info");
        worker.Description = $"torch {answer.GetProperty("torch").GetString()}, {answer.GetProperty("threads").GetInt32()} threads, BLAS {answer.GetProperty("blas").GetString()}";
        return worker;
    }

    /// <summary>Builds a model of perf/torch/models.py (the same case as the engine's); returns its parameter count.</summary>
    public long Load(string key) => Ask($"load {key}").GetProperty("parameters").GetInt64();

    /// <summary>One round: forward, gradient, HVP (double backward) and train step, in milliseconds.</summary>
    public double[] Round(string key)
    {
        var answer = Ask($"round {key}");
        return new[] { "forward", "gradient", "hvp", "train_step" }.Select(n => answer.GetProperty(n).GetDouble()).ToArray();
    }

    private JsonElement Ask(string command)
    {
        process.StandardInput.WriteLine(command);
        process.StandardInput.Flush();
        var line = process.StandardOutput.ReadLine();
        if (line is null)
            throw new InvalidOperationException($"--torch: perf/torch/bench.py ended (exit {(process.WaitForExit(2000) ? process.ExitCode : -1)}) on '{command}'; "
                + "is Debian's python3-torch installed? perf/torch/install.sh installs it.");
        var answer = JsonDocument.Parse(line).RootElement.Clone();
        if (answer.TryGetProperty("error", out var e)) throw new InvalidOperationException($"--torch: perf/torch/bench.py: {e.GetString()}");
        return answer;
    }

    public void Dispose()
    {
        try
        {
            process.StandardInput.Close();
            if (!process.WaitForExit(5000)) process.Kill();
        }
        catch (InvalidOperationException) { }
        process.Dispose();
    }
}
