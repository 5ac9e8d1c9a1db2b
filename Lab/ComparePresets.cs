using System.Globalization;
using System.Text;
using Curvature.Models;
using Curvature.Training;
using ScottPlot;
using static Curvature.Lab.Compare;

namespace Curvature.Lab;

/// <summary>
/// The comparisons that are several comparisons: <c>--preset tuned</c> (each optimizer's learning rate chosen on the
/// validation loss before the seeds are run) and <c>--preset transfer</c> (pretraining on some classes, fine-tuning on
/// the others with every optimizer).
/// </summary>
internal static class ComparePresets
{
    /// <summary>The key a preset tunes: the learning rate, or L4's step fraction α (L4 has no learning rate).</summary>
    public static string TunedKey(OptimizerSpec spec) => spec.Entry.Find("lr") is not null ? "lr" : spec.Entry.Find("alpha") is not null ? "alpha" : "";

    /// <summary>
    /// For each spec, a sweep of its rate over <paramref name="multipliers"/> × its value (one seed each, fewer steps,
    /// into <c>tune/</c>), the rate with the lowest final validation loss (a divergent run never wins), then the
    /// comparison of the chosen specs with every seed. The report gets the chosen rates, the grid's figures and
    /// <c>sensitivity.png</c>: final validation loss against the rate, one line per optimizer.
    /// </summary>
    public static IReadOnlyList<Run> Tuned(Settings s, OptimizerSpec[] specs, IReadOnlyDictionary<string, double> defaults, double[] multipliers,
        int tuneSteps, int tuneSeeds, TextWriter output, string commandLine)
    {
        var chosen = new List<OptimizerSpec>();
        var grids = new List<(OptimizerSpec Spec, string Key, (double Value, double ValLoss, int Diverged)[] Points, double Best)>();
        foreach (var spec in specs)
        {
            string key = TunedKey(spec);
            if (key.Length == 0) { chosen.Add(spec); continue; }
            double center = spec.Resolve(defaults)[key];
            var values = multipliers.Select(m => m * center).ToArray();
            var variants = values.Select(v => spec.With(key, v)).Select(sp => new Variant($"{key}={sp.Entry.Find(key)!.Format(sp.Resolve(defaults)[key])}",
                sp.Describe(defaults), sp.Entry.Proposed, (ps, seed) => sp.Create(ps, seed, defaults), sp.Entry.LogsSharpness)).ToArray();
            var tune = s with { LightProbeIterations = 0, Variants = variants, Seeds = tuneSeeds, Steps = tuneSteps, Out = Path.Combine(s.Out, "tune", FolderName(spec.Text)),
                                Title = $"Tuning {spec.Text} over {key}", TargetLoss = null, TargetValLoss = null };
            var runs = Compare.Execute(tune, output, commandLine + $"  (tuning {spec.Text})");
            var points = variants.Select((v, i) =>
            {
                var rs = runs.Where(r => r.Optimizer == v.Label).ToArray();
                return (values[i], rs.All(r => double.IsFinite(r.ValLoss)) ? rs.Average(r => r.ValLoss) : double.NaN, rs.Count(r => r.Result.DivergedAt is not null));
            }).ToArray();
            var finite = points.Where(p => double.IsFinite(p.Item2)).ToArray();
            double best = finite.Length > 0 ? finite.MinBy(p => p.Item2).Item1 : center;
            chosen.Add(spec.With(key, best));
            grids.Add((spec, key, points, best));
        }
        var final = s with { Variants = ForSpecs(chosen, defaults), Title = (s.Title ?? "Optimizer comparison") + ", tuned rates" };
        var result = Compare.Execute(final, output, commandLine);
        // Every rank chose the same rates (their runs' validation losses are the same numbers); rank 0 writes.
        if (!s.WritesFiles) return result;
        SensitivityPlot(grids.Select(g => (g.Spec.Text, g.Key, g.Points.Select(p => (p.Value, p.ValLoss)).ToArray())).ToArray(), Path.Combine(s.Out, "sensitivity.png"));
        var sb = new StringBuilder(File.ReadAllText(Path.Combine(s.Out, "report.md")));
        sb.AppendLine();
        sb.AppendLine($"## Tuning (one grid per optimizer: {string.Join(", ", multipliers.Select(m => m.ToString("G3", CultureInfo.InvariantCulture)))} × its default, {tuneSeeds} seed{(tuneSeeds > 1 ? "s" : "")}, {tuneSteps} steps, chosen on the final validation loss)");
        sb.AppendLine();
        sb.AppendLine("| optimizer | key | chosen | final validation loss at each value (— diverged) |");
        sb.AppendLine("|---|---|---|---|");
        foreach (var g in grids)
            sb.AppendLine($"| {g.Spec.Text} | {g.Key} | {g.Best.ToString("G4", CultureInfo.InvariantCulture)} | " +
                          string.Join("; ", g.Points.Select(p => $"{p.Value.ToString("G3", CultureInfo.InvariantCulture)}: {(double.IsFinite(p.ValLoss) ? p.ValLoss.ToString("0.0000", CultureInfo.InvariantCulture) : "—")}")) + " |");
        sb.AppendLine();
        sb.AppendLine("`sensitivity.png`: final validation loss against the rate (log scale), one line per optimizer; a rule robust to its base rate has a flat line. The grids' own reports are in `tune/`.");
        AtomicFile.WriteAllText(Path.Combine(s.Out, "report.md"), sb.ToString());
        return result;
    }

    private static void SensitivityPlot(IReadOnlyList<(string Label, string Key, (double Value, double ValLoss)[] Points)> grids, string path)
    {
        var plot = new Plot();
        foreach (var (label, key, points) in grids)
        {
            var finite = points.Where(p => double.IsFinite(p.ValLoss)).ToArray();
            if (finite.Length == 0) continue;
            var line = plot.Add.ScatterLine(finite.Select(p => Math.Log10(p.Value)).ToArray(), finite.Select(p => p.ValLoss).ToArray());
            line.LegendText = $"{label} ({key})";
            line.MarkerSize = 6;
        }
        // A diverging grid point can be orders of magnitude above the rest; the axis stops at 1.5× the largest per-line median.
        var medians = grids.Select(g => g.Points.Select(p => p.ValLoss).Where(double.IsFinite).Order().ToArray()).Where(v => v.Length > 0).Select(v => v[v.Length / 2]).ToArray();
        if (medians.Length > 0) plot.Axes.SetLimitsY(0, 1.5 * medians.Max());
        plot.XLabel("log₁₀ of the rate (η, η_base or η₀; α for L4)"); plot.YLabel("final validation loss (higher points off the scale)"); plot.ShowLegend(Edge.Right);
        AtomicFile.WriteAllBytes(path, plot.GetImageBytes(1100, 550, ImageFormat.Png));
    }

    /// <summary>
    /// Pretrains with each of <paramref name="pretrain"/> on <paramref name="first"/> (into <c>pretrain/</c>), then from
    /// each pretrained model (seed by seed, a fresh head) fine-tunes with every variant of <paramref name="s"/> on
    /// <paramref name="second"/> (into <c>finetune-from-NAME/</c>); <c>report.md</c> holds both stages.
    /// </summary>
    public static IReadOnlyList<Run> Transfer(Settings s, Variant[] pretrain, int[] first, int[] second, TextWriter output, string commandLine)
    {
        var pre = s with { Variants = pretrain, Classes = first, Out = Path.Combine(s.Out, "pretrain"), Title = $"Transfer, stage 1: pretraining on classes {string.Join(",", first)}",
                           Init = null, ResetHead = false };
        Compare.Execute(pre, output, commandLine + "  (pretraining)");
        // Every rank fine-tunes from the weights rank 0 wrote: they must be on disk first.
        s.Communicator.Barrier();
        var sb = new StringBuilder();
        sb.AppendLine($"# Transfer: pretrain on classes {string.Join(",", first)}, fine-tune on classes {string.Join(",", second)}: {s.Task}");
        sb.AppendLine();
        sb.AppendLine($"Command: `./lab {commandLine}`");
        sb.AppendLine();
        sb.AppendLine($"Stage 1 pretrains with {string.Join(", ", pretrain.Select(v => $"`{v.Label}`"))} ([`pretrain/report.md`](pretrain/report.md)). Stage 2 starts every optimizer from " +
                      "each pretrained model of the same seed with a freshly initialized head and fine-tunes on the other classes; one report per pretrained model below.");
        IReadOnlyList<Run> last = [];
        foreach (var p in pretrain)
        {
            string folder = "finetune-from-" + FolderName(p.Label);
            var fine = s with { Classes = second, Init = Path.Combine(pre.Out, FolderName(p.Label), "seed{seed}", "model.safetensors"), ResetHead = true,
                                Out = Path.Combine(s.Out, folder), Title = $"Transfer, stage 2: fine-tuning on classes {string.Join(",", second)} from `{p.Label}`" };
            last = Compare.Execute(fine, output, commandLine + $"  (fine-tuning from {p.Label})");
            if (!s.WritesFiles) continue;
            sb.AppendLine();
            sb.AppendLine(File.ReadAllText(Path.Combine(fine.Out, "report.md")).Replace("\n# ", "\n## ", StringComparison.Ordinal).Insert(0, "#"));
        }
        if (!s.WritesFiles) return last;
        AtomicFile.WriteAllText(Path.Combine(s.Out, "report.md"), sb.ToString());
        output.WriteLine($"transfer: wrote {Path.Combine(s.Out, "report.md")}");
        return last;
    }
}
