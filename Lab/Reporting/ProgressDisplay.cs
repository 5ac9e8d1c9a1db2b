using System.Diagnostics;
using Spectre.Console;

namespace Curvature.Lab.Reporting;

/// <summary>Reports the progress of one long task: a step count and a status text.</summary>
public interface IProgressTask
{
    /// <summary>Sets the completed steps and a short status (loss, rate, …).</summary>
    void Report(int completed, string status);
}

/// <summary>
/// Progress for long runs: a Spectre.Console progress bar per task on an interactive terminal, plain lines
/// (about twenty per task) when the output is redirected or captured.
/// </summary>
public static class ProgressDisplay
{
    /// <summary>Runs <paramref name="body"/> with one progress task per (label, total).</summary>
    public static void Run(TextWriter output, IReadOnlyList<(string Label, int Total)> tasks, Action<IReadOnlyList<IProgressTask>> body)
    {
        bool terminal = ReferenceEquals(output, Console.Out) && !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;
        if (!terminal)
        {
            body(tasks.Select(t => (IProgressTask)new PlainTask(output, t.Label, t.Total)).ToArray());
            return;
        }
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx => body(tasks.Select(t => (IProgressTask)new BarTask(ctx.AddTask(Markup.Escape(t.Label), autoStart: true, maxValue: t.Total), t.Label)).ToArray()));
    }

    private sealed class BarTask(ProgressTask task, string label) : IProgressTask
    {
        public void Report(int completed, string status)
        {
            task.Value = completed;
            task.Description = Markup.Escape($"{label}  {status}");
        }
    }

    private sealed class PlainTask(TextWriter output, string label, int total) : IProgressTask
    {
        private Stopwatch? clock;
        private int nextReport;

        public void Report(int completed, string status)
        {
            clock ??= Stopwatch.StartNew(); // tasks run one after another: time each from its first report
            if (completed < nextReport && completed < total) return;
            nextReport = completed + Math.Max(1, total / 20);
            double seconds = clock.Elapsed.TotalSeconds, rate = completed / Math.Max(seconds, 1e-9);
            // No rate from the first instant (it would be a division by almost nothing).
            string eta = completed < total && rate > 0 ? $", about {TimeSpan.FromSeconds(Math.Ceiling((total - completed) / rate)):c} left" : "";
            output.WriteLine(seconds < 0.05 ? $"{label}: {completed}/{total}  {status}" : $"{label}: {completed}/{total}  {status}  ({rate:0.0}/s{eta})");
        }
    }
}
