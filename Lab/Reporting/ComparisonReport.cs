using System.Globalization;
using System.Text;
using System.Text.Json;
using Curvature.Models;
using Curvature.Training;
using ScottPlot;
using static Curvature.Lab.Compare;

namespace Curvature.Lab.Reporting;

/// <summary>What <c>compare</c> and <c>sweep</c> write: the Markdown report with its verdicts, <c>summary.json</c> and the plots.</summary>
internal static class ComparisonReport
{
    /// <summary>One reported figure of a run: its name, whether lower is better, how to print it, and its value (NaN: not available).</summary>
    private sealed record Metric(string Name, bool LowerIsBetter, string Format, Func<Run, double> Value, bool IsTarget = false);

    private static Metric[] Metrics(bool text, int window) =>
    [
        new("final validation loss", true, "0.0000", r => r.ValLoss),
        .. text ? new Metric[] { new("validation bits per character", true, "0.0000", r => r.ValLoss / Math.Log(2)), new("validation perplexity", true, "0.00", r => Math.Exp(r.ValLoss)) } : [],
        new("epochs to the validation target", true, "0.00", r => r.StepsToValTarget is { } t ? t / (double)r.StepsPerEpoch : double.NaN, IsTarget: true),
        new("steps to the training-loss target", true, "0", r => r.StepsToTarget is { } t ? t : double.NaN, IsTarget: true),
        new("stability (loss variance)", true, "0.00e+00", r => r.Result.Losses.Length > 0 ? RunMetrics.Stability(r.Losses, window) : double.NaN),
        new(text ? "validation next-character accuracy" : "test accuracy", false, "0.0000", r => r.TestAccuracy),
        new("ECE (15 bins)", true, "0.0000", r => r.Ece),
        new("wall-clock s", true, "0.0", r => r.Result.Seconds),
    ];

    // A diverged run's figures can be astronomically large (a perplexity of e^684): those print in scientific notation.
    private static string F(double v, string format) => !double.IsFinite(v) ? "—"
        : v.ToString(Math.Abs(v) >= 1e6 && !format.Contains('e', StringComparison.Ordinal) ? "0.00e+00" : format, CultureInfo.InvariantCulture);

    /// <summary>"mean ± std [95 % CI]" of the finite values.</summary>
    private static string Cell(IEnumerable<double> values, string format)
    {
        var s = Statistics.Summarize(values);
        if (s.Count == 0) return "—";
        return s.Count == 1 ? F(s.Mean, format) : $"{F(s.Mean, format)} ± {F(s.Std, format)} [{F(s.Low, format)}, {F(s.High, format)}]";
    }

    /// <summary>The Markdown report.</summary>
    public static string Markdown(Settings s, TrainingTask task, IReadOnlyList<Run> runs, double target, double valTarget, string commandLine)
    {
        bool text = s.Task == "gpt-shakespeare";
        var groups = runs.GroupBy(r => r.Optimizer).ToArray();
        var sb = new StringBuilder();
        sb.AppendLine($"# {s.Title ?? "Optimizer comparison"}: {s.Task}");
        sb.AppendLine();
        sb.AppendLine($"Command: `./lab {commandLine}`");
        sb.AppendLine();
        sb.AppendLine($"{task.Describe}; cross-entropy, minibatch {s.Batch}, {s.Steps} steps ({s.Steps / (double)task.StepsPerEpoch:0.##} epochs of {task.StepsPerEpoch} steps), {s.Seeds} seed{(s.Seeds == 1 ? "" : "s")}. " +
                      $"Curvature probes: the **{(s.ProbeTrainingMode ? "training" : "evaluation")}-mode** loss on a fixed batch of {s.ProbeBatch} training examples, every T = {s.ProbeEvery} steps unless a spec sets probe_every; " +
                      $"{(s.AuditEvery > 0 ? $"every {s.AuditEvery}th probe audited against a converged Lanczos λmax of the same operator." : "no audits.")} " +
                      $"Validation loss every {s.EvalEvery} steps on {task.ValidationCount:N0} held-out {(text ? $"validation windows of {s.Gpt?.Context ?? 128} characters (the same windows at every evaluation)" : "training images, never trained on")}; " +
                      $"validation target {F(valTarget, "G4")}{(s.TargetValLoss is null ? " (the best final validation loss × 1.1)" : "")}; training-loss target {F(target, "G4")} " +
                      $"(trailing mean over W = {s.Window} steps{(s.TargetLoss is null ? "; the best final × 1.2" : "")}). " +
                      (s.Seeds == 1 ? "Cells: the one seed's value (no spread without a second seed); — where the run did not reach a target." : "Cells: mean ± std [95 % Student-t interval] over seeds; — where a run did not reach a target."));
        sb.AppendLine();
        sb.AppendLine(Provenance.Describe(s.Device ?? Engine.CpuDevice.Instance) + " Wall-clock: after untimed warm-up steps of every configuration, in an order rotated with the seed.");
        sb.AppendLine();
        var metrics = Metrics(text, s.Window);
        sb.AppendLine("| optimizer | " + string.Join(" | ", metrics.Select(m => m.Name)) + " | diverged |");
        sb.AppendLine("|---" + string.Concat(metrics.Select(_ => "|---")) + "|---|");
        foreach (var g in groups)
            sb.AppendLine($"| {g.Key} | " + string.Join(" | ", metrics.Select(m => Cell(g.Select(m.Value), m.Format) + Reached(m, g))) +
                          $" | {g.Count(r => r.Result.DivergedAt is not null)}/{g.Count()} |");
        sb.AppendLine();
        sb.AppendLine("| optimizer | train GFLOP/sample | probe GFLOP/sample | time probing | audit: estimate / converged λmax (mean, min–max, audits) | audit time s |");
        sb.AppendLine("|---|---|---|---|---|---|");
        foreach (var g in groups)
        {
            var ratios = g.SelectMany(r => r.AuditRatios).ToArray();
            string audit = ratios.Length == 0 ? "—" : $"{F(ratios.Average(), "0.000")} ({F(ratios.Min(), "0.000")}–{F(ratios.Max(), "0.000")}, {ratios.Length})";
            sb.AppendLine($"| {g.Key} | {Cell(g.Select(r => r.TrainFlopsPerSample / 1e9), "0.0000")} | {Cell(g.Select(r => r.ProbeFlopsPerSample / 1e9), "0.0000")} | " +
                          $"{Cell(g.Select(r => r.Result.ProbeSeconds / r.Result.Seconds * 100), "0.0")} % | {audit} | {Cell(g.Select(r => r.Result.AuditSeconds), "0.0")} |");
        }
        sb.AppendLine();
        sb.AppendLine("## Verdicts");
        sb.AppendLine();
        foreach (var line in Verdicts(s, groups, metrics)) sb.AppendLine($"- {line}");
        sb.AppendLine();
        sb.AppendLine("Configurations: " + string.Join("; ", s.Variants.Select(v => $"`{v.Label}`: {v.Description}")) + ".");
        sb.AppendLine();
        sb.AppendLine("Plots (one color per configuration throughout): `loss.png` (training loss on a log axis, bias-corrected exponential average, ± std over seeds, the target dashed, " +
                      "a dotted line where a seed diverged), `val_loss.png` (validation loss, its target), `lr.png` (learning rate, seed 0), `sharpness.png` (seed 0: each curvature rule's " +
                      "λmax estimate and audits, every other optimizer's light probe every T steps (Lanczos, outside its wall-clock), each against its edge limit/η dashed and CAEO's own target (limit − δ)/η dotted). Each run's folder holds `steps.csv`, `init.safetensors` and `probe_batch.safetensors`, " +
                      $"so any probe can be recomputed with `./lab spectrum --model {task.Model} --weights … --batch …/probe_batch.safetensors --mode {(s.ProbeTrainingMode ? "train" : "eval")}`.");
        return sb.ToString();
    }

    private static string Reached(Metric m, IEnumerable<Run> g) => m.IsTarget ? $" ({g.Count(r => double.IsFinite(m.Value(r)))}/{g.Count()} reached)" : "";

    /// <summary>
    /// For each proposed rule and each metric, one line against the best baseline on that metric: both means, the mean
    /// paired difference with its 95 % interval, the paired t-test's p over the seeds both ran, and the word: better or
    /// worse where p &lt; 0.05, otherwise no significant difference.
    /// </summary>
    private static IEnumerable<string> Verdicts(Settings s, IGrouping<string, Run>[] groups, Metric[] metrics)
    {
        bool IsProposed(string label) => s.Variants.First(v => v.Label == label).Proposed;
        var proposed = groups.Where(g => IsProposed(g.Key)).ToArray();
        var baselines = groups.Where(g => !IsProposed(g.Key)).ToArray();
        if (proposed.Length == 0 || baselines.Length == 0)
        {
            yield return "No verdicts: a verdict sets a proposed rule (CAEO, DCAO) against a baseline, and this comparison does not hold both.";
            yield break;
        }
        foreach (var p in proposed)
            foreach (var m in metrics)
            {
                var scored = baselines.Select(b => (b, mean: b.Select(m.Value).Where(double.IsFinite).DefaultIfEmpty(double.NaN).Average()))
                    .Where(t => double.IsFinite(t.mean)).ToArray();
                if (scored.Length == 0) { yield return $"`{p.Key}`, {m.Name}: no baseline has a value."; continue; }
                var best = (m.LowerIsBetter ? scored.MinBy(t => t.mean) : scored.MaxBy(t => t.mean)).b;
                var seeds = p.Select(r => r.Seed).Intersect(best.Select(r => r.Seed)).Order().ToArray();
                var a = seeds.Select(sd => m.Value(p.First(r => r.Seed == sd))).ToArray();
                var b = seeds.Select(sd => m.Value(best.First(r => r.Seed == sd))).ToArray();
                int missing = a.Count(v => !double.IsFinite(v)) + b.Count(v => !double.IsFinite(v));
                string means = $"{F(Mean(a), m.Format)} against {F(Mean(b), m.Format)}";
                if (missing > 0)
                {
                    yield return $"`{p.Key}` against `{best.Key}` (best baseline), {m.Name}: {means}; not tested, {a.Count(v => !double.IsFinite(v))} of {a.Length} and {b.Count(v => !double.IsFinite(v))} of {b.Length} runs have no value (target not reached).";
                    continue;
                }
                var test = Statistics.Paired(a, b);
                if (test is null) { yield return $"`{p.Key}` against `{best.Key}` (best baseline), {m.Name}: {means}; one seed, no test."; continue; }
                var diff = Statistics.Summarize(a.Zip(b, (x, y) => x - y));
                bool better = m.LowerIsBetter ? test.MeanDifference < 0 : test.MeanDifference > 0;
                string word = test.P < 0.05 ? (better ? "**better**" : "**worse**") : "no significant difference";
                yield return $"`{p.Key}` against `{best.Key}` (best baseline), {m.Name}: {means}, difference {F(test.MeanDifference, m.Format)} " +
                             $"[{F(diff.Low, m.Format)}, {F(diff.High, m.Format)}], paired t over {test.Count} seeds p = {F(test.P, "0.000")}: {word}.";
            }
    }

    private static double Mean(double[] v) => Statistics.Summarize(v).Mean;

    /// <summary>summary.json: the settings and each run's figures.</summary>
    public static string SummaryJson(Settings s, IReadOnlyList<Run> runs, double? target = null, double? valTarget = null) => JsonSerializer.Serialize(new
    {
        task = s.Task,
        steps = s.Steps,
        batch = s.Batch,
        train = s.Train,
        validation = s.Validation,
        probe_batch = s.ProbeBatch,
        probe_mode = s.ProbeTrainingMode ? "train" : "eval",
        probe_every = s.ProbeEvery,
        audit_every = s.AuditEvery,
        eval_every = s.EvalEvery,
        target_loss = target is { } t && double.IsFinite(t) ? t : (double?)null,
        target_val_loss = valTarget is { } v && double.IsFinite(v) ? v : (double?)null,
        configurations = s.Variants.Select(v => new { label = v.Label, description = v.Description, proposed = v.Proposed }),
        runs = runs.Select(r => new
        {
            optimizer = r.Optimizer,
            seed = r.Seed,
            final_loss = Finite(r.Losses[^1]),
            diverged_at = r.Result.DivergedAt,
            val_loss = Finite(r.ValLoss),
            val_bits_per_char = s.Task == "gpt-shakespeare" ? Finite(r.ValLoss / Math.Log(2)) : null,
            steps_to_target = r.StepsToTarget,
            steps_to_val_target = r.StepsToValTarget,
            epochs_to_val_target = r.StepsToValTarget / (double?)r.StepsPerEpoch,
            stability = Finite(RunMetrics.Stability(r.Losses, s.Window)),
            test_accuracy = Finite(r.TestAccuracy),
            ece = Finite(r.Ece),
            seconds = Finite(r.Result.Seconds),
            probe_seconds = Finite(r.Result.ProbeSeconds),
            audit_seconds = Finite(r.Result.AuditSeconds),
            train_flops_per_sample = Finite(r.TrainFlopsPerSample),
            probe_flops_per_sample = Finite(r.ProbeFlopsPerSample),
            audit_ratios = r.AuditRatios,
        }),
    }, new JsonSerializerOptions { WriteIndented = true });

    private static double? Finite(double v) => double.IsFinite(v) ? v : null;

    /// <summary>
    /// One color per configuration, the same in every plot: its place in the comparison picks a Category10 color
    /// (drawing order alone would not do: each band takes a palette color too, so lines repeated after five).
    /// </summary>
    private static Color ColorOf(Settings s, string label) =>
        new ScottPlot.Palettes.Category10().GetColor(Math.Max(0, Array.FindIndex(s.Variants, v => v.Label == label)));

    /// <summary>loss.png, val_loss.png, lr.png and sharpness.png in the output folder.</summary>
    public static void Plots(Settings s, IReadOnlyList<Run> runs, double target = double.NaN, double valTarget = double.NaN)
    {
        string title = $"{s.Title ?? "Optimizer comparison"}: {s.Task}, {s.Variants.Length} configurations, {s.Seeds} seed{(s.Seeds == 1 ? "" : "s")} × {s.Steps} steps";
        var groups = runs.GroupBy(r => r.Optimizer).ToArray();

        // Training loss: log axis, an exponential average with its start-up bias removed (a trailing mean would kink
        // where its window fills), the band over seeds, the target, and a marker where a seed diverged.
        var loss = new Plot();
        foreach (var g in groups)
        {
            // A divergent run's curve ends where it diverged; the band covers the steps every seed ran.
            int n = g.Min(r => r.Result.DivergedAt ?? s.Steps);
            if (n == 0) continue;
            var curves = g.Select(r => RunMetrics.ExponentialAverage(r.Losses[..n], s.Window).Select(LogAxis.Of).ToArray()).ToArray();
            Band(loss, g.Key, Enumerable.Range(0, n).Select(i => (double)i).ToArray(), curves, ColorOf(s, g.Key));
        }
        Target(loss, target, "training-loss target");
        Diverged(loss, s, runs);
        Finish(loss, title, "step", $"training loss (log scale, EMA span {s.Window}, ± std)", logY: true,
            groups.SelectMany(g => g.Select(r => r.Losses.Take(r.Result.StepsRun).Where(double.IsFinite).DefaultIfEmpty(double.NaN).First())));
        AtomicFile.WriteAllBytes(Path.Combine(s.Out, "loss.png"), loss.GetImageBytes(1100, 550, ImageFormat.Png));

        var val = new Plot();
        foreach (var g in groups)
        {
            var steps = g.MinBy(r => r.ValLosses.Count)!.ValLosses.Select(e => (double)e.Step).ToArray();
            var curves = g.Select(r => r.ValLosses.Take(steps.Length).Select(e => LogAxis.Of(e.Value)).ToArray()).ToArray();
            if (steps.Length > 0) Band(val, g.Key, steps, curves, ColorOf(s, g.Key)).MarkerSize = 4;
        }
        Target(val, valTarget, "validation target");
        Diverged(val, s, runs);
        Finish(val, title, "step", "validation loss (log scale, ± std)", logY: true, groups.SelectMany(g => g.SelectMany(r => r.ValLosses.Take(1).Select(e => e.Value))));
        AtomicFile.WriteAllBytes(Path.Combine(s.Out, "val_loss.png"), val.GetImageBytes(1100, 550, ImageFormat.Png));

        var lr = new Plot();
        foreach (var r in runs.Where(r => r.Seed == 0))
        {
            int n = r.Result.StepsRun;
            if (n == 0) continue;
            var line = lr.Add.ScatterLine(Enumerable.Range(0, n).Select(i => (double)i).ToArray(), r.Result.LearningRates[..n].Select(LogAxis.Of).ToArray());
            line.LegendText = r.Optimizer;
            line.Color = ColorOf(s, r.Optimizer);
        }
        Diverged(lr, s, runs.Where(r => r.Seed == 0).ToArray());
        Finish(lr, title, "step", "learning rate η (log scale, seed 0)", logY: true, []);
        AtomicFile.WriteAllBytes(Path.Combine(s.Out, "lr.png"), lr.GetImageBytes(1100, 550, ImageFormat.Png));

        // Sharpness of every optimizer (the curvature rules' own estimates, the baselines' light probes), each
        // against its edge in its own color (limit/η: 2/η for GD, (2 + 2μ)/η with heavy-ball momentum) and, for
        // CAEO, its own target (limit − δ)/η dotted: the rule keeps its estimate on or under that line.
        var sharp = new Plot();
        bool any = false;
        var edgeLows = new List<double>();
        foreach (var run in runs.Where(r => r.Seed == 0))
        {
            var r = run.Result;
            var color = ColorOf(s, run.Optimizer);
            var pts = Enumerable.Range(0, r.StepsRun).Where(t => r.Sharpness[t] is { } v && double.IsFinite(v)).ToArray();
            if (pts.Length == 0) continue;
            any = true;
            var est = sharp.Add.ScatterLine(pts.Select(t => (double)t).ToArray(), pts.Select(t => r.Sharpness[t]!.Value).ToArray());
            est.LegendText = $"{run.Optimizer}: λmax {(s.Variants.FirstOrDefault(v => v.Label == run.Optimizer)?.LogsSharpness == true ? "(its estimate)" : "(light probe)")}";
            est.Color = color;
            est.MarkerSize = 3;
            var audited = Enumerable.Range(0, r.StepsRun).Where(t => r.AuditSharpness[t] is { } v && double.IsFinite(v)).ToArray();
            if (audited.Length > 0)
            {
                var a = sharp.Add.ScatterPoints(audited.Select(t => (double)t).ToArray(), audited.Select(t => r.AuditSharpness[t]!.Value).ToArray());
                a.LegendText = $"{run.Optimizer}: converged Lanczos λmax (audit)";
                a.Color = color;
                a.MarkerShape = MarkerShape.OpenCircle;
                a.MarkerSize = 8;
            }
            int ran = r.StepsRun;
            var steps = Enumerable.Range(0, ran).Select(t => (double)t).ToArray();
            if (double.IsFinite(run.StabilityLimit))
            {
                double limit = run.StabilityLimit;
                var edge = sharp.Add.ScatterLine(steps, r.LearningRates[..ran].Select(x => limit / x).ToArray());
                edgeLows.Add(r.LearningRates[..ran].Where(double.IsFinite).Select(x => limit / x).DefaultIfEmpty(double.PositiveInfinity).Min());
                edge.LinePattern = LinePattern.Dashed;
                edge.Color = color.WithAlpha(0.7);
                edge.LegendText = $"{run.Optimizer}: edge {limit.ToString("0.##", CultureInfo.InvariantCulture)}/η";
            }
            if (double.IsFinite(run.RuleBound))
            {
                double bound = run.RuleBound;
                var own = sharp.Add.ScatterLine(steps, r.LearningRates[..ran].Select(x => bound / x).ToArray());
                own.LinePattern = LinePattern.Dotted;
                own.Color = color.WithAlpha(0.7);
                own.LegendText = $"{run.Optimizer}: its target {bound.ToString("0.##", CultureInfo.InvariantCulture)}/η (limit − δ)";
            }
        }
        if (!any) return;
        // The axis spans the sharpness data (negative estimates included, never clipped at 0) and reaches every edge
        // that comes within four times the largest λmax (an edge far above the data is named in the legend only).
        var values = runs.Where(r => r.Seed == 0).SelectMany(r => r.Result.Sharpness.Concat(r.Result.AuditSharpness)).Where(v => v is { } x && double.IsFinite(x)).Select(v => v!.Value).ToArray();
        double lo = Math.Min(0, values.Min()), hi = values.Max();
        sharp.Axes.SetLimitsY(lo - 0.05 * (hi - lo), Math.Max(1.15 * hi, 1.1 * edgeLows.Where(e => e <= 4 * hi).DefaultIfEmpty(0).Max()) - Math.Min(0, lo));
        Finish(sharp, title, "step", "λmax of the probe batch's Hessian (seed 0)", logY: false, []);
        AtomicFile.WriteAllBytes(Path.Combine(s.Out, "sharpness.png"), sharp.GetImageBytes(1100, 550, ImageFormat.Png));
    }

    private static void Target(Plot p, double value, string what)
    {
        if (!(value > 0 && double.IsFinite(value))) return;
        var line = p.Add.HorizontalLine(Math.Log10(value));
        line.LinePattern = LinePattern.Dashed;
        line.Color = Colors.Black;
        line.LineWidth = 1.5f;
        line.LegendText = $"{what} {value.ToString("G4", CultureInfo.InvariantCulture)}";
    }

    /// <summary>A dotted vertical line, in the optimizer's color, at every step where a run diverged.</summary>
    private static void Diverged(Plot p, Settings s, IEnumerable<Run> runs)
    {
        foreach (var r in runs.Where(r => r.Result.DivergedAt is not null))
        {
            var line = p.Add.VerticalLine(r.Result.DivergedAt!.Value);
            line.LinePattern = LinePattern.Dotted;
            line.LineWidth = 2;
            line.Color = ColorOf(s, r.Optimizer);
            line.LegendText = $"{r.Optimizer} seed {r.Seed} diverged at step {r.Result.DivergedAt}";
        }
    }

    /// <summary>Title, labels, a decade-labeled log axis when asked (an upper limit a decade above the first values, so a blow-up does not flatten the rest), the legend beside the data.</summary>
    private static void Finish(Plot p, string title, string x, string y, bool logY, IEnumerable<double> firstValues)
    {
        p.Title(title, 13);
        p.XLabel(x);
        p.YLabel(y);
        if (logY)
        {
            LogAxis.Label(p);
            var first = firstValues.Where(v => v > 0 && double.IsFinite(v)).ToArray();
            if (first.Length > 0)
            {
                p.Axes.AutoScale();
                var limits = p.Axes.GetLimits();
                double cap = Math.Log10(first.Max()) + 1;
                if (limits.Top > cap) p.Axes.SetLimitsY(limits.Bottom, cap);
            }
        }
        p.ShowLegend(Edge.Right);
    }

    /// <summary>A mean line with a ± std band over curves of equal length.</summary>
    private static ScottPlot.Plottables.Scatter Band(Plot plot, string label, double[] xs, double[][] curves, Color color)
    {
        var mean = xs.Select((_, i) => curves.Average(c => c[i])).ToArray();
        var std = xs.Select((_, i) => Math.Sqrt(curves.Sum(c => (c[i] - mean[i]) * (c[i] - mean[i])) / Math.Max(1, curves.Length - 1))).ToArray();
        var band = plot.Add.FillY(xs, mean.Zip(std, (m, d) => m - d).ToArray(), mean.Zip(std, (m, d) => m + d).ToArray());
        var line = plot.Add.ScatterLine(xs, mean);
        line.LegendText = label;
        line.Color = color;
        band.FillColor = color.WithAlpha(0.2);
        band.LineWidth = 0;
        return line;
    }
}
