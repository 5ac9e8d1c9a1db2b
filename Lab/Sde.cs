using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Curvature.Engine;
using Curvature.Lab.Reporting;
using Curvature.Models;
using Curvature.Optimizers;
using Curvature.Training;
using ScottPlot;

namespace Curvature.Lab;

/// <summary>
/// <c>Lab sde</c>: whether SGD at rate η and minibatch b is modelled by the SDE dθ = −∇L dt + √(η/b)·Σ^½ dW (Li,
/// Malladi and Arora 2021). From one start it runs SGD, its SVAG versions (<see cref="Svag"/>: l steps of η/l
/// with l times the noise covariance, converging to the SDE as l grows) and Gaussian SGD (<see cref="GaussianGradient"/>:
/// the noise replaced by a Gaussian of the same covariance), and compares their training loss and test accuracy
/// at equal η·t. Where SGD's curves agree with the largest l's, the SDE describes this SGD; where they do not, the
/// report says so.
/// </summary>
public static class Sde
{
    /// <summary>Settings of an experiment.</summary>
    public sealed record Settings(string Task, double LearningRate, int Batch, int Steps, int[] Ls, bool Gaussian, int Train, int EvalEvery, ulong Seed,
        string Data, string Out, int Width, string Activation, string Loss, double Tolerance, Device? Device = null, int Seeds = 1)
    {
        /// <summary>The seeds run: <see cref="Seed"/>, <see cref="Seed"/> + 1, …</summary>
        public ulong[] SeedList => Enumerable.Range(0, Seeds).Select(i => Seed + (ulong)i).ToArray();
    }

    /// <summary>One evaluation of a variant: after <paramref name="Steps"/> of its steps, at time η·t = <paramref name="Time"/>.</summary>
    public sealed record Point(int Steps, double Time, double TrainLoss, double TestLoss, double TestAccuracy);

    /// <summary>A variant's run.</summary>
    public sealed record Run(string Variant, int L, ulong Seed, double LearningRate, int Steps, IReadOnlyList<Point> Points, int? DivergedAt, double Seconds)
    {
        /// <summary>The mean over the second half's evaluations (times ≥ η·T/2) of a point's figure: one number per run, so iterate noise averages out.</summary>
        public double SecondHalf(Func<Point, double> figure, double halfTime) =>
            Points.Where(p => p.Time >= halfTime - 1e-12).Select(figure).DefaultIfEmpty(double.NaN).Average();
    }

    /// <summary>
    /// A variant against the reference (the largest l's SVAG), over the seeds: the relative gap of the second-half
    /// mean training loss, the gap in second-half mean test accuracy, each with a paired t-test over seeds (null for
    /// one seed), and the verdict: <c>agree</c> (no significant difference at 5% and a loss gap within the tolerance),
    /// <c>differ</c> (a significant difference, or with one seed a gap beyond the tolerance) or <c>inconclusive</c>
    /// (not significant, but a gap beyond the tolerance: the seeds are too few or too noisy to tell).
    /// </summary>
    public sealed record Agreement(string Variant, string Reference, double TrainLossGap, double TestAccuracyGap, double? TrainLossP, double? TestAccuracyP, string Verdict)
    {
        /// <summary>Whether the verdict is agreement.</summary>
        public bool Agrees => Verdict == "agree";
    }

    internal static Command Command(TextWriter output)
    {
        var common = new Cli.CommonOptions();
        var task = Options.OneOf("--task", "mlp-fmnist or resnet20-fmnist", "mlp-fmnist", "mlp-fmnist", "resnet20-fmnist");
        var lr = Options.Number("--lr", "SGD's learning rate η (SVAG with l takes η/l)", 0.1, min: 0, minExclusive: true);
        var batch = Options.Int("--batch", "Minibatch size b", 32, max: 1_000_000);
        var steps = Options.Int("--steps", "SGD steps T (SVAG with l takes l·T steps to reach the same time η·T)", 1000, max: Options.MaxSteps);
        var seeds = Options.Int("--seeds", "Seeds per variant (--seed, --seed + 1, …): the verdicts are paired t-tests over them", 1, max: 1000);
        var ls = new Option<string>("--ls") { Description = "SVAG amplifications l, comma-separated integers ≥ 1 (l = 1 is SGD itself)", DefaultValueFactory = _ => "1,2,4,8" };
        var noGaussian = new Option<bool>("--no-gaussian") { Description = "Leave out Gaussian SGD (its step is a reverse pass over all --train examples)" };
        var train = Options.Int("--train", "Training images (the first N; also Gaussian SGD's pool)", 2000, max: 1_000_000);
        var evalEvery = Options.Int("--eval-every", "SGD-equivalent steps between evaluations (default: T/20)", 0, min: 0, max: Options.MaxSteps);
        var width = Options.Int("--width", "Hidden width of the MLP", 200, max: 65536);
        var act = Options.OneOf("--activation", "tanh or relu", "tanh", "tanh", "relu");
        var loss = Options.OneOf("--loss", "ce or mse", "ce", Loss.Names);
        var tolerance = Options.Number("--tolerance", "Largest relative gap in training loss (over the second half) still read as agreement", 0.1, min: 0, minExclusive: true);
        var data = Options.FashionMnistFolder();
        var outDir = new Option<string>("--out") { Description = "Output folder for curves.csv, summary.json and sde.png", DefaultValueFactory = _ => "out/sde" };
        var cmd = new Command("sde", "Is SGD modelled by its SDE? SGD, SVAG (l = 2, 4, 8) and Gaussian SGD from one start, training loss and test accuracy against η·t (Li, Malladi and Arora 2021)");
        foreach (var o in new Option[] { task, lr, batch, steps, seeds, ls, noGaussian, train, evalEvery, width, act, loss, tolerance, data, outDir }) cmd.Options.Add(o);
        common.AddTo(cmd);
        cmd.SetAction(r =>
        {
            var device = common.Apply(r, output);
            int t = r.GetValue(steps);
            var s = new Settings(r.GetValue(task)!, r.GetValue(lr), r.GetValue(batch), t, ParseLs(r.GetValue(ls)!), !r.GetValue(noGaussian), r.GetValue(train),
                r.GetValue(evalEvery) is > 0 and var e ? e : Math.Max(1, t / 20), r.GetValue(common.Seed), r.GetValue(data)!, r.GetValue(outDir)!,
                r.GetValue(width), r.GetValue(act)!, r.GetValue(loss)!, r.GetValue(tolerance), device, r.GetValue(seeds));
            if (s.Batch > s.Train) throw new UsageException($"--batch {s.Batch} is larger than the {s.Train} training images (--train).");
            if (s.EvalEvery > s.Steps) throw new UsageException($"--eval-every {s.EvalEvery} is more than the {s.Steps} steps (--steps).");
            var (runs, agreements) = Execute(s, output);
            if (r.GetValue(common.Json) is { } path) AtomicFile.WriteAllText(path, SummaryJson(s, runs, agreements));
            return 0;
        });
        return cmd;
    }

    /// <summary>Parses --ls: distinct integers ≥ 1, ascending.</summary>
    public static int[] ParseLs(string text)
    {
        var parts = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var values = new List<int>();
        foreach (var p in parts)
        {
            if (!int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out int l) || l < 1 || l > 1024)
                throw new UsageException($"--ls: '{p}' is not an amplification; expected integers from 1 to 1024 such as 1,2,4,8.");
            values.Add(l);
        }
        if (values.Count == 0) throw new UsageException("--ls: expected at least one amplification, such as 1,2,4,8.");
        return values.Distinct().Order().ToArray();
    }

    /// <summary>Runs every variant and writes curves.csv, summary.json and sde.png.</summary>
    public static (IReadOnlyList<Run> Runs, IReadOnlyList<Agreement> Agreements) Execute(Settings s, TextWriter output)
    {
        var task = TrainingTask.Create(s.Task, s.Data, "", s.Batch, s.Train, mlpWidth: s.Width, activation: s.Activation);
        task.Device = s.Device ?? CpuDevice.Instance;
        using var folder = RunFolder.Open(s.Out, checkExisting: false);
        var pool = task.ProbeBatch(s.Train);
        var variants = s.Ls.Select(l => (Name: l == 1 ? "sgd" : $"svag l={l}", L: l)).ToList();
        if (s.Gaussian) variants.Add(("gaussian", 1));
        output.WriteLine($"sde: {task.Describe}; η {s.LearningRate}, b {s.Batch}, {s.Steps} SGD steps (time η·T = {s.LearningRate * s.Steps:0.###}), evaluations every {s.EvalEvery}; variants {string.Join(", ", variants.Select(v => v.Name))}");
        var starts = s.SeedList.ToDictionary(seed => seed, seed => Evaluate(task, task.CreateModel(seed)));
        var runs = new List<Run>();
        var csv = new CsvLog("variant", "l", "seed", "steps", "time", "train_loss", "test_loss", "test_accuracy");
        var jobs = s.SeedList.SelectMany(seed => variants.Select(v => (v.Name, v.L, Seed: seed))).ToArray();
        ProgressDisplay.Run(output, jobs.Select(j => (s.Seeds > 1 ? $"{j.Name}, seed {j.Seed}" : j.Name, s.Steps * j.L)).ToArray(), bars =>
        {
            for (int i = 0; i < jobs.Length; i++)
            {
                var (name, l, seed) = jobs[i];
                var run = RunVariant(s, task, name, l, seed, pool, starts[seed], bars[i]);
                runs.Add(run);
                foreach (var p in run.Points) csv.Add(run.Variant, run.L, run.Seed, p.Steps, p.Time, p.TrainLoss, p.TestLoss, p.TestAccuracy);
                csv.Write(Path.Combine(s.Out, "curves.csv"));
                AtomicFile.WriteAllText(Path.Combine(s.Out, "summary.json"), SummaryJson(s, runs, []));
            }
        });
        var agreements = Compare(runs, s);
        AtomicFile.WriteAllText(Path.Combine(s.Out, "summary.json"), SummaryJson(s, runs, agreements));
        Plot(runs, Path.Combine(s.Out, "sde.png"), s, task.Describe);
        Print(output, runs, agreements, s);
        return (runs, agreements);
    }

    private static double[] Evaluate(TrainingTask task, Module m)
    {
        var e = task.Evaluate(m);
        return [e.TrainLoss, e.HeldOutLoss, e.HeldOutAccuracy];
    }

    private static Run RunVariant(Settings s, TrainingTask task, string name, int l, ulong seed, (NdArray Inputs, NdArray Targets) pool, double[] start, IProgressTask progress)
    {
        IGradientRule rule = name == "gaussian" ? new GaussianGradient(pool.Inputs, pool.Targets, s.Batch) : l == 1 ? new MinibatchGradient() : new Svag(l);
        double lr = s.LearningRate / l;
        var result = new Trainer
        {
            Model = task.CreateModel(seed), Optimizer = new GradientDescent(lr), Batches = task.Batches(seed), GradientRule = rule,
            Steps = s.Steps * l, Seed = seed, Loss = s.Loss, StopWhenDiverged = true,
            Evaluator = new Evaluator(["train_loss", "test_loss", "test_accuracy"], m => Evaluate(task, m)), EvalEvery = s.EvalEvery * l,
            OnStep = r => { if (r.Step % 50 == 0) progress.Report(r.Step, $"loss {r.Loss:0.0000}"); },
        }.Run();
        progress.Report(s.Steps * l, result.DivergedAt is { } d ? $"diverged at step {d}" : "done");
        var points = new List<Point> { new(0, 0, start[0], start[1], start[2]) };
        points.AddRange(result.Evaluations.Select(e => new Point(e.Step, lr * e.Step, e.Values[0], e.Values[1], e.Values[2])));
        return new Run(name, l, seed, lr, result.StepsRun, points, result.DivergedAt, result.Seconds);
    }

    /// <summary>
    /// Every variant against the largest l's SVAG (the closest to the SDE), pairing runs by seed: the second-half
    /// mean training loss and test accuracy of each run, their mean gaps and paired t-tests (see <see cref="Agreement"/>).
    /// None when there is no SVAG variant beyond l = 1. A diverged run makes its variant differ.
    /// </summary>
    public static IReadOnlyList<Agreement> Compare(IReadOnlyList<Run> runs, Settings s)
    {
        var byVariant = runs.GroupBy(r => r.Variant).ToDictionary(g => g.Key, g => g.OrderBy(r => r.Seed).ToList());
        var reference = byVariant.Keys.Where(v => v.StartsWith("svag", StringComparison.Ordinal)).MaxBy(v => byVariant[v][0].L);
        if (reference is null) return [];
        double half = s.LearningRate * s.Steps / 2;
        double[] Figure(List<Run> rs, Func<Point, double> f) => rs.Select(r => r.DivergedAt is null ? r.SecondHalf(f, half) : double.NaN).ToArray();
        var refLoss = Figure(byVariant[reference], p => p.TrainLoss);
        var refAcc = Figure(byVariant[reference], p => p.TestAccuracy);
        return byVariant.Where(kv => kv.Key != reference).Select(kv =>
        {
            var loss = Figure(kv.Value, p => p.TrainLoss);
            var acc = Figure(kv.Value, p => p.TestAccuracy);
            double gap = Math.Abs(loss.Average() - refLoss.Average()) / Math.Abs(refLoss.Average());
            double accGap = Math.Abs(acc.Average() - refAcc.Average());
            var (pl, pa) = (Statistics.Paired(loss, refLoss)?.P, Statistics.Paired(acc, refAcc)?.P);
            bool diverged = loss.Concat(refLoss).Any(v => !double.IsFinite(v));
            string verdict = diverged ? "differ"
                : pl is { } a && pa is { } b ? (a < 0.05 || b < 0.05 ? "differ" : gap <= s.Tolerance ? "agree" : "inconclusive")
                : gap <= s.Tolerance ? "agree" : "differ";
            return new Agreement(kv.Key, reference, gap, accGap, pl, pa, verdict);
        }).ToList();
    }

    private static string F(double v, string format = "0.0000") => double.IsFinite(v) ? v.ToString(format, CultureInfo.InvariantCulture) : "—";

    private static void Print(TextWriter o, IReadOnlyList<Run> runs, IReadOnlyList<Agreement> agreements, Settings s)
    {
        o.WriteLine();
        double half = s.LearningRate * s.Steps / 2;
        o.WriteLine($"Second-half means (η·t ≥ {half:0.###}) over {s.Seeds} seed{(s.Seeds > 1 ? "s" : "")}:");
        o.WriteLine();
        o.WriteLine("| variant | η per step | steps | train loss, 2nd half | test accuracy, 2nd half | final test accuracy | seconds |");
        o.WriteLine("|---|---|---|---|---|---|---|");
        foreach (var g in runs.GroupBy(r => r.Variant))
        {
            var rs = g.ToList();
            var diverged = rs.Where(r => r.DivergedAt is not null).Select(r => $"seed {r.Seed} diverged at {r.DivergedAt}").ToList();
            o.WriteLine($"| {g.Key} | {rs[0].LearningRate:G4} | {rs[0].Steps}{(diverged.Count > 0 ? $" ({string.Join(", ", diverged)})" : "")} | {F(rs.Average(r => r.SecondHalf(p => p.TrainLoss, half)))} | "
                + $"{F(rs.Average(r => r.SecondHalf(p => p.TestAccuracy, half)), "0.000")} | {F(rs.Average(r => r.Points[^1].TestAccuracy), "0.000")} | {F(rs.Sum(r => r.Seconds), "0")} |");
        }
        o.WriteLine();
        string P(double? p) => p is { } v ? $", paired p = {v:0.###}" : "";
        foreach (var a in agreements)
            o.WriteLine($"{a.Variant} against {a.Reference}: second-half training loss {F(100 * a.TrainLossGap, "0.0")}% apart{P(a.TrainLossP)}, test accuracy {F(100 * a.TestAccuracyGap, "0.0")} points{P(a.TestAccuracyP)}: "
                + a.Verdict switch
                {
                    "agree" => $"they agree (no significant difference, within the {100 * s.Tolerance:0.#}% tolerance)",
                    "inconclusive" => $"inconclusive (not significant, but beyond the {100 * s.Tolerance:0.#}% tolerance: more seeds would tell)",
                    _ => s.Seeds > 1 ? "they differ (significant at 5%, or a run diverged)" : $"they differ (beyond the {100 * s.Tolerance:0.#}% tolerance; one seed)",
                });
        if (agreements.Count > 0 && s.Seeds == 1)
            o.WriteLine("(one seed: a gap is SDE error plus seed-to-seed spread; --seeds 3 or more gives paired tests)");
        o.WriteLine();
        o.WriteLine($"wrote {Path.Combine(s.Out, "curves.csv")}, {Path.Combine(s.Out, "summary.json")}, {Path.Combine(s.Out, "sde.png")}");
    }

    /// <summary>The summary document.</summary>
    public static string SummaryJson(Settings s, IReadOnlyList<Run> runs, IReadOnlyList<Agreement> agreements) => JsonSerializer.Serialize(new
    {
        experiment = "sde",
        task = s.Task,
        lr = s.LearningRate,
        batch = s.Batch,
        steps = s.Steps,
        time = s.LearningRate * s.Steps,
        train = s.Train,
        loss = s.Loss,
        seeds = s.SeedList,
        tolerance = s.Tolerance,
        runs = runs.Select(r => new
        {
            variant = r.Variant,
            l = r.L,
            seed = r.Seed,
            lr_per_step = r.LearningRate,
            steps_run = r.Steps,
            diverged_at = r.DivergedAt,
            final_train_loss = Finite(r.Points[^1].TrainLoss),
            final_test_loss = Finite(r.Points[^1].TestLoss),
            final_test_accuracy = Finite(r.Points[^1].TestAccuracy),
            seconds = r.Seconds,
        }),
        agreement = agreements.Select(a => new
        {
            variant = a.Variant,
            reference = a.Reference,
            train_loss_relative_gap = Finite(a.TrainLossGap),
            test_accuracy_gap = Finite(a.TestAccuracyGap),
            train_loss_p = a.TrainLossP,
            test_accuracy_p = a.TestAccuracyP,
            verdict = a.Verdict,
            agrees = a.Agrees,
        }),
    }, new JsonSerializerOptions { WriteIndented = true });

    private static double? Finite(double v) => double.IsFinite(v) ? v : null;

    /// <summary>Training loss and test accuracy against η·t, a line per variant.</summary>
    public static void Plot(IReadOnlyList<Run> runs, string path, Settings s, string describe)
    {
        var mp = new Multiplot();
        mp.AddPlots(2);
        mp.Layout = new ScottPlot.MultiplotLayouts.Grid(1, 2);
        var (lossPlot, accPlot) = (mp.GetPlot(0), mp.GetPlot(1));
        foreach (var g in runs.GroupBy(r => r.Variant))
        {
            // The mean over seeds at each evaluation time (runs that diverged stop early: the mean is over those still running).
            var series = g.SelectMany(r => r.Points).GroupBy(p => Math.Round(p.Time, 9)).OrderBy(t => t.Key)
                .Select(t => (Time: t.Key, Loss: t.Average(p => p.TrainLoss), Accuracy: t.Average(p => p.TestAccuracy))).ToArray();
            string label = s.Seeds > 1 ? $"{g.Key} (mean of {s.Seeds})" : g.Key;
            var a = lossPlot.Add.ScatterLine(series.Select(p => p.Time).ToArray(), series.Select(p => Math.Log10(p.Loss)).ToArray());
            a.LegendText = label;
            a.MarkerSize = 3;
            var b = accPlot.Add.ScatterLine(series.Select(p => p.Time).ToArray(), series.Select(p => p.Accuracy).ToArray());
            b.LegendText = label;
            b.MarkerSize = 3;
            if (g.Key == "gaussian") a.LinePattern = b.LinePattern = LinePattern.Dashed;
        }
        lossPlot.Title($"training loss, η {s.LearningRate}, b {s.Batch}");
        lossPlot.YLabel("log₁₀ training loss");
        lossPlot.XLabel("η·t");
        accPlot.Title($"test accuracy, {s.Task}");
        accPlot.YLabel("test accuracy");
        accPlot.XLabel("η·t");
        lossPlot.ShowLegend(Edge.Bottom);
        accPlot.ShowLegend(Edge.Bottom);
        AtomicFile.WriteAllBytes(path, mp.Render(1000, 520).GetImageBytes(ImageFormat.Png));
    }
}
