using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Curvature.Autodiff;
using Curvature.Engine;
using Curvature.Lab.Reporting;
using Curvature.Models;
using Curvature.Optimizers;
using Curvature.Spectral;
using ScottPlot;

namespace Curvature.Lab;

/// <summary>
/// <c>Lab compare</c>: trains one model per (optimizer, seed) on a task and reports, as mean ± std over seeds:
/// steps to a target loss, stability (mean trailing-window loss variance), test accuracy, expected calibration
/// error, wall-clock, FLOPs per sample (training and curvature probes apart) and the share of time probing.
/// Each run writes its <c>steps.csv</c>; the folder gets <c>report.md</c>, <c>summary.json</c> and plots.
/// </summary>
public static class Compare
{
    /// <summary>The tasks (see <see cref="TrainingTask"/>).</summary>
    public static readonly string[] Tasks = TrainingTask.Names;

    /// <summary>One configuration under comparison: a label, how to build its optimiser, and what it is.</summary>
    public sealed record Variant(string Label, string Description, Func<IReadOnlyList<string>, ulong, IOptimizer> Create);

    /// <summary>The variants for a list of optimizer names with the factory's defaults.</summary>
    public static Variant[] ForOptimizers(IEnumerable<string> names, OptimizerFactory.Curvature curvature) =>
        names.Select(n => new Variant(n, OptimizerFactory.Defaults[n], (ps, seed) => OptimizerFactory.Create(n, curvature, ps, seed))).ToArray();

    /// <summary>Settings of a comparison.</summary>
    public sealed record Settings(string Task, Variant[] Variants, int Seeds, int Steps, int Batch, int Train, int ProbeBatch,
        double? TargetLoss, int Window, OptimizerFactory.Curvature Curvature, string Data, string Out, string? Title = null,
        int CheckpointEvery = 100, bool Resume = false, string Text = Lab.Train.DefaultText, Engine.Device? Device = null);

    /// <summary>One (optimizer, seed) run.</summary>
    public sealed record Run(string Optimizer, int Seed, double[] Losses, double? StepsToTarget, double Stability, double TestAccuracy, double Ece,
        double Seconds, double ProbeSeconds, double TrainFlopsPerSample, double ProbeFlopsPerSample, List<(int Step, double Lr, double? Sharpness)> Curve);

    /// <summary>The options compare and sweep share: the task, the runs and where their files go.</summary>
    internal sealed class RunOptions
    {
        public readonly Cli.CommonOptions Common = new();
        public readonly Option<string> Task = Options.OneOf("--task", "Task", "mlp-fmnist", Tasks);
        public readonly Option<int> Seeds = Options.Int("--seeds", "Seeds per configuration", 3);
        public readonly Option<int> Steps = Options.Int("--steps", "Training steps per run", 300);
        public readonly Option<int> Batch = Options.Int("--batch", "Minibatch size", 128);
        public readonly Option<int> Train = Options.Int("--train", "Training images used (the first N)", 10000);
        public readonly Option<int> ProbeBatch = Options.Int("--probe-batch", "Examples in the fixed curvature probe batch", 32);
        public readonly Option<double?> Target = new("--target-loss") { Description = "Training loss (trailing mean) to count steps to; default: the best final loss × 1.2" };
        public readonly Option<int> Window = Options.Int("--window", "Trailing window W for stability and the target", 20, min: 2);
        public readonly Option<int> ProbeEvery = Options.Int("--probe-every", "Steps T between curvature probes", 10);
        public readonly Option<string> Data = Options.FashionMnistFolder();
        public readonly Option<string> Text = new("--text") { Description = "gpt-shakespeare: the character corpus", DefaultValueFactory = _ => Lab.Train.DefaultText };
        public readonly Option<string> Out;
        public readonly Option<int> CheckpointEvery = Options.Int("--checkpoint-every", "Steps between checkpoints of each run (also written at the end)", 100);
        public readonly Option<bool> Resume = new("--resume") { Description = "Continue every run from its checkpoint in --out (runs without one start afresh)" };

        public RunOptions(string defaultOut) => Out = new Option<string>("--out") { Description = "Output folder", DefaultValueFactory = _ => defaultOut };

        public void AddTo(Command c)
        {
            foreach (var o in new Option[] { Task, Seeds, Steps, Batch, Train, ProbeBatch, Target, Window, ProbeEvery, Data, Text, Out, CheckpointEvery, Resume }) c.Options.Add(o);
            Common.AddTo(c);
        }

        public Settings Build(ParseResult r, Engine.Device device, Variant[] variants, OptimizerFactory.Curvature curvature, string? title) =>
            new(r.GetValue(Task)!, variants, r.GetValue(Seeds), r.GetValue(Steps), r.GetValue(Batch), r.GetValue(Train), r.GetValue(ProbeBatch),
                r.GetValue(Target), r.GetValue(Window), curvature, r.GetValue(Data)!, r.GetValue(Out)!, title, r.GetValue(CheckpointEvery), r.GetValue(Resume), r.GetValue(Text)!,
                device);

        /// <summary>Runs the settings and writes the JSON copy if asked; the verb's action.</summary>
        public int Execute(ParseResult r, Settings s, TextWriter output)
        {
            // The parse tokens start with the verb itself.
            var runs = Compare.Execute(s, output, string.Join(' ', r.Tokens.Select(t => t.Value)));
            if (r.GetValue(Common.Json) is { } path) AtomicFile.WriteAllText(path, SummaryJson(s, runs));
            return 0;
        }
    }

    internal static Command Command(TextWriter output)
    {
        var run = new RunOptions("out/compare");
        var optimizers = new Option<string>("--optimizers") { Description = $"Comma-separated: {string.Join(",", OptimizerFactory.Defaults.Keys)}", DefaultValueFactory = _ => "sgd,momentum,adam,adamw,l4,hidlr,dcao,caeo" };
        optimizers.Validators.Add(r =>
        {
            try { OptimizerFactory.Parse(r.GetValueOrDefault<string>() ?? ""); }
            catch (LabException e) { r.AddError($"--optimizers: {e.Message}"); }
        });
        var delta = new Option<double>("--delta") { Description = "CAEO's margin δ below the edge, in [0, 2)", DefaultValueFactory = _ => 0.5 };
        delta.Validators.Add(r =>
        {
            double d = r.GetValueOrDefault<double>();
            if (!(d >= 0 && d < 2)) r.AddError($"--delta must lie in [0, 2), got {d}.");
        });
        var estimator = Options.OneOf("--estimator", "CAEO's λmax estimator", "power", "power", "hutchinson", "kfac");
        var cmd = new Command("compare", "Train with several optimizers and seeds; report steps to target, stability, accuracy, calibration, cost");
        foreach (var o in new Option[] { optimizers, delta, estimator }) cmd.Options.Add(o);
        run.AddTo(cmd);
        cmd.SetAction(r =>
        {
            var device = run.Common.Apply(r, output);
            var curvature = new OptimizerFactory.Curvature(r.GetValue(run.ProbeEvery), r.GetValue(delta), OptimizerFactory.Estimator(r.GetValue(estimator)!));
            var s = run.Build(r, device, ForOptimizers(OptimizerFactory.Parse(r.GetValue(optimizers)!), curvature), curvature, null);
            return run.Execute(r, s, output);
        });
        return cmd;
    }

    /// <summary>Runs every (optimizer, seed) and writes the report.</summary>
    public static IReadOnlyList<Run> Execute(Settings s, TextWriter output, string commandLine)
    {
        var task = TrainingTask.Create(s.Task, s.Data, s.Text, s.Batch, s.Task == "gpt-shakespeare" ? null : s.Train);
        task.Device = s.Device ?? Engine.CpuDevice.Instance;
        Directory.CreateDirectory(s.Out);
        var probe = task.ProbeBatch(s.ProbeBatch);
        output.WriteLine($"compare: {task.Describe}; {string.Join(", ", s.Variants.Select(v => v.Label))}; {s.Seeds} seeds × {s.Steps} steps, batch {s.Batch}, probe batch {probe.Inputs.Shape[0]}, T {s.Curvature.ProbeEvery}");
        var runs = new List<Run>();
        var labels = s.Variants.SelectMany(v => Enumerable.Range(0, s.Seeds).Select(seed => ($"{v.Label} seed {seed}", s.Steps))).ToArray();
        ProgressDisplay.Run(output, labels, tasks =>
        {
            int t = 0;
            foreach (var variant in s.Variants)
                for (int seed = 0; seed < s.Seeds; seed++)
                {
                    runs.Add(Train(s, task, variant, seed, probe, tasks[t++]));
                    AtomicFile.WriteAllText(Path.Combine(s.Out, "summary.json"), SummaryJson(s, runs));
                }
        });
        double target = s.TargetLoss ?? 1.2 * runs.GroupBy(r => r.Optimizer).Min(g => g.Average(r => TrailingMean(r.Losses, s.Window)[^1]));
        var withTarget = runs.Select(r => r with { StepsToTarget = StepsTo(r.Losses, target, s.Window) }).ToList();
        AtomicFile.WriteAllText(Path.Combine(s.Out, "summary.json"), SummaryJson(s, withTarget));
        var report = Report(s, task, withTarget, target, commandLine);
        AtomicFile.WriteAllText(Path.Combine(s.Out, "report.md"), report);
        Plots(s, withTarget);
        output.WriteLine();
        output.Write(report);
        return withTarget;
    }

    private static Run Train(Settings s, TrainingTask task, Variant variant, int seed, (NdArray Inputs, NdArray Targets) probe, IProgressTask progress)
    {
        string name = variant.Label;
        var rng = new RandomGenerator((ulong)seed);
        var model = task.CreateModel((ulong)seed);
        var named = model.NamedParameters();
        var ps = named.Select(p => p.Value).ToArray();
        var optimizer = variant.Create(named.Select(p => p.Name).ToArray(), (ulong)seed);
        var dir = Path.Combine(s.Out, FolderName(name), $"seed{seed}");
        Directory.CreateDirectory(dir);
        string checkpointPath = Path.Combine(dir, "checkpoint.safetensors"), csvPath = Path.Combine(dir, "steps.csv");
        var csv = new CsvLog("step", "loss", "lr", "momentum", "weight_decay", "sharpness", "lr_times_sharpness");
        var losses = new double[s.Steps];
        var curve = new List<(int, double, double?)>();
        var trainFlops = new FlopCounter();
        var probeFlops = new FlopCounter();
        var probeClock = new Stopwatch();
        var clock = Stopwatch.StartNew();
        var (probeX, probeY) = probe;
        var stream = task.Batches((ulong)seed);
        int first = 0;
        double secondsBefore = 0, probeSecondsBefore = 0, trainFlopsBefore = 0, probeFlopsBefore = 0;
        if (s.Resume && File.Exists(checkpointPath))
        {
            var meta = Checkpoint.Load(checkpointPath, model, optimizer);
            first = (int)Checkpoint.Integer(meta, "step", checkpointPath);
            if (first > s.Steps) throw new LabException($"{checkpointPath}: the checkpoint is at step {first}, past --steps {s.Steps}.");
            stream.Restore(meta, checkpointPath);
            rng = new RandomGenerator((ulong)seed, (ulong)Checkpoint.Integer(meta, "rng_offset", checkpointPath));
            secondsBefore = double.Parse(meta["seconds"], CultureInfo.InvariantCulture);
            probeSecondsBefore = double.Parse(meta["probe_seconds"], CultureInfo.InvariantCulture);
            trainFlopsBefore = double.Parse(meta["train_flops"], CultureInfo.InvariantCulture);
            probeFlopsBefore = double.Parse(meta["probe_flops"], CultureInfo.InvariantCulture);
            foreach (var line in File.ReadLines(csvPath).Skip(1).Take(first))
            {
                var f = line.Split(',');
                int step = int.Parse(f[0], CultureInfo.InvariantCulture);
                double? Opt(string x) => x.Length == 0 ? null : double.Parse(x, CultureInfo.InvariantCulture);
                double lr = double.Parse(f[2], CultureInfo.InvariantCulture);
                losses[step] = double.Parse(f[1], CultureInfo.InvariantCulture);
                curve.Add((step, lr, Opt(f[5])));
                csv.Add(step, losses[step], lr, double.Parse(f[3], CultureInfo.InvariantCulture), double.Parse(f[4], CultureInfo.InvariantCulture), Opt(f[5]), Opt(f[6]));
            }
            if (csv.Count != first) throw new LabException($"{csvPath} holds {csv.Count} steps but the checkpoint is at step {first}.");
        }

        void Save(int step)
        {
            csv.Write(csvPath);
            Checkpoint.Save(checkpointPath, model, optimizer, step, new Dictionary<string, string>(stream.Cursor())
            {
                ["run"] = $"{name} seed {seed}",
                ["rng_offset"] = rng.Offset.ToString(CultureInfo.InvariantCulture),
                ["seconds"] = (secondsBefore + clock.Elapsed.TotalSeconds).ToString("R", CultureInfo.InvariantCulture),
                ["probe_seconds"] = (probeSecondsBefore + probeClock.Elapsed.TotalSeconds).ToString("R", CultureInfo.InvariantCulture),
                ["train_flops"] = (trainFlopsBefore + trainFlops.Flops).ToString("R", CultureInfo.InvariantCulture),
                ["probe_flops"] = (probeFlopsBefore + probeFlops.Flops).ToString("R", CultureInfo.InvariantCulture),
            });
        }

        for (int step = first; step < s.Steps; step++)
        {
            var (x, y) = stream.Next(rng);
            (Tensor Value, Tensor[] Grads) vg;
            using (FlopCounter.Count(trainFlops)) vg = Lab.Train.TrainingGradient(model, "ce", x, y, null);
            double loss = vg.Value.ToScalar();
            if (!double.IsFinite(loss)) throw new LabException($"{name} seed {seed}: the loss at step {step} is {loss}; stopping (the last checkpoint and steps.csv are kept in {dir}).");
            losses[step] = loss;
            var context = new StepContext
            {
                Step = step, Loss = loss, Parameters = ps, Gradients = vg.Grads.Select(g => g.Data).ToArray(),
                Curvature = () => new ProbeTimer(new HessianOperator(Loss.Function(model, "ce", probeX, probeY), ps.Select(p => p.Value).ToArray()), probeClock, probeFlops),
                MinibatchCurvature = () => new ProbeTimer(new HessianOperator(Loss.Function(model, "ce", x, y, training: true), ps.Select(p => p.Value).ToArray()), probeClock, probeFlops),
                Kfac = () =>
                {
                    probeClock.Start();
                    try { using (FlopCounter.Count(probeFlops)) return KroneckerFactoredCurvature.Compute(model, "ce", probeX, rng); }
                    finally { probeClock.Stop(); }
                },
            };
            try { optimizer.Step(context); }
            catch (Exception e) when (e is ArithmeticException or ArgumentOutOfRangeException)
            {
                throw new LabException($"{name} seed {seed}: {e.Message.Split(" (Parameter")[0]} (the last checkpoint and steps.csv are kept in {dir}).");
            }
            var log = optimizer.Last;
            csv.Add(step, loss, log.LearningRate, log.Momentum, log.WeightDecay, log.Sharpness, log.Sharpness is { } sh ? log.LearningRate * sh : null);
            curve.Add((step, log.LearningRate, log.Sharpness));
            progress.Report(step + 1, $"loss {loss:0.0000}  η {log.LearningRate:G3}" + (log.Sharpness is { } l ? $"  λmax {l:0.00}" : ""));
            if ((step + 1) % s.CheckpointEvery == 0 && step + 1 < s.Steps) Save(step + 1);
        }
        Save(s.Steps);
        double seconds = secondsBefore + clock.Elapsed.TotalSeconds;
        var evaluation = task.Evaluate(model);
        var (accuracy, ece) = (evaluation.HeldOutAccuracy, evaluation.HeldOutEce);
        long samples = (long)s.Steps * s.Batch;
        return new Run(name, seed, losses, null, Stability(losses, s.Window), accuracy, ece, seconds, probeSecondsBefore + probeClock.Elapsed.TotalSeconds,
            (trainFlopsBefore + trainFlops.Flops) / samples, (probeFlopsBefore + probeFlops.Flops) / samples, curve);
    }

    /// <summary>An ASCII folder name for a run label ("δ=0.5" → "delta_0.5").</summary>
    public static string FolderName(string label) => string.Concat(label.Select(ch => ch switch
    {
        'δ' => "delta",
        'α' => "alpha",
        'β' => "beta",
        _ when char.IsAsciiLetterOrDigit(ch) || ch is '-' or '.' => ch.ToString(),
        _ => "_",
    }));

    /// <summary>Counts the time and FLOPs of every product on the wrapped operator as probe cost.</summary>
    private sealed class ProbeTimer(ILinearOperator inner, Stopwatch clock, FlopCounter flops) : ILinearOperator
    {
        public long Dimension => inner.Dimension;
        public DType DType => inner.DType;
        public Device Device => inner.Device;
        public NdArray Apply(NdArray v)
        {
            clock.Start();
            try { using (FlopCounter.Count(flops)) return inner.Apply(v); }
            finally { clock.Stop(); }
        }
    }

    /// <summary>Trailing means over a window W (shorter at the start).</summary>
    public static double[] TrailingMean(double[] x, int w)
    {
        var r = new double[x.Length];
        double sum = 0;
        for (int i = 0; i < x.Length; i++)
        {
            sum += x[i];
            if (i >= w) sum -= x[i - w];
            r[i] = sum / Math.Min(i + 1, w);
        }
        return r;
    }

    /// <summary>The first step whose trailing mean loss is at or below the target, or null.</summary>
    public static double? StepsTo(double[] losses, double target, int w)
    {
        var m = TrailingMean(losses, w);
        for (int i = 0; i < m.Length; i++) if (m[i] <= target) return i;
        return null;
    }

    /// <summary>Mean over steps t ≥ W−1 of the sample variance of the loss in the window ending at t.</summary>
    public static double Stability(double[] losses, int w)
    {
        if (losses.Length < w || w < 2) return double.NaN;
        double total = 0;
        int count = 0;
        for (int t = w - 1; t < losses.Length; t++)
        {
            var window = losses.AsSpan(t - w + 1, w);
            double mean = 0;
            foreach (var v in window) mean += v;
            mean /= w;
            double var = 0;
            foreach (var v in window) var += (v - mean) * (v - mean);
            total += var / (w - 1);
            count++;
        }
        return total / count;
    }

    private static string MeanStd(IEnumerable<double> values, string format)
    {
        var v = values.Where(double.IsFinite).ToArray();
        if (v.Length == 0) return "—";
        double mean = v.Average(), std = v.Length > 1 ? Math.Sqrt(v.Sum(x => (x - mean) * (x - mean)) / (v.Length - 1)) : 0;
        return $"{mean.ToString(format, CultureInfo.InvariantCulture)} ± {std.ToString(format, CultureInfo.InvariantCulture)}";
    }

    private static string Report(Settings s, TrainingTask task, IReadOnlyList<Run> runs, double target, string commandLine)
    {
        var sb = new StringBuilder();
        sb.AppendLine($"# {(s.Title ?? "Optimizer comparison")}: {s.Task}");
        sb.AppendLine();
        sb.AppendLine($"Command: `./lab {commandLine}`");
        sb.AppendLine();
        sb.AppendLine($"{task.Describe}; cross-entropy, minibatch {s.Batch}, {s.Steps} steps, {s.Seeds} seeds; " +
                      $"curvature probes every {s.Curvature.ProbeEvery} steps on a fixed batch of {s.ProbeBatch} (δ {s.Curvature.Delta}, estimator {s.Curvature.Estimator.ToString().ToLowerInvariant()}). " +
                      $"Mean ± std over seeds. Target loss {target.ToString("G4", CultureInfo.InvariantCulture)} (trailing mean over W = {s.Window} steps).");
        sb.AppendLine();
        sb.AppendLine("| optimizer | steps to target | stability (loss variance) | test accuracy | ECE (15 bins) | wall-clock s | train GFLOP/sample | probe GFLOP/sample | time probing |");
        sb.AppendLine("|---|---|---|---|---|---|---|---|---|");
        foreach (var g in runs.GroupBy(r => r.Optimizer))
        {
            int reached = g.Count(r => r.StepsToTarget is not null);
            sb.AppendLine($"| {g.Key} | {MeanStd(g.Where(r => r.StepsToTarget is not null).Select(r => r.StepsToTarget!.Value), "0")} ({reached}/{g.Count()} reached) | " +
                          $"{MeanStd(g.Select(r => r.Stability), "0.00e+00")} | {MeanStd(g.Select(r => r.TestAccuracy), "0.0000")} | {MeanStd(g.Select(r => r.Ece), "0.0000")} | " +
                          $"{MeanStd(g.Select(r => r.Seconds), "0.0")} | {MeanStd(g.Select(r => r.TrainFlopsPerSample / 1e9), "0.0000")} | {MeanStd(g.Select(r => r.ProbeFlopsPerSample / 1e9), "0.0000")} | " +
                          $"{MeanStd(g.Select(r => r.ProbeSeconds / r.Seconds * 100), "0.0")} % |");
        }
        sb.AppendLine();
        sb.AppendLine("Configurations: " + string.Join("; ", s.Variants.Select(v => $"{v.Label}: {v.Description}")) + ".");
        sb.AppendLine();
        sb.AppendLine("Plots: `loss.png` (training loss, mean ± std band over seeds, trailing mean), `lr.png` (learning rate, seed 0), `sharpness.png` (probed λmax and 2/η, seed 0).");
        return sb.ToString();
    }

    private static string SummaryJson(Settings s, IReadOnlyList<Run> runs) => JsonSerializer.Serialize(new
    {
        task = s.Task,
        steps = s.Steps,
        batch = s.Batch,
        train = s.Train,
        probe_batch = s.ProbeBatch,
        probe_every = s.Curvature.ProbeEvery,
        delta = s.Curvature.Delta,
        runs = runs.Select(r => new
        {
            optimizer = r.Optimizer,
            seed = r.Seed,
            final_loss = r.Losses[^1],
            steps_to_target = r.StepsToTarget,
            stability = double.IsFinite(r.Stability) ? r.Stability : (double?)null,
            test_accuracy = r.TestAccuracy,
            ece = r.Ece,
            seconds = r.Seconds,
            probe_seconds = r.ProbeSeconds,
            train_flops_per_sample = r.TrainFlopsPerSample,
            probe_flops_per_sample = r.ProbeFlopsPerSample,
        }),
    }, new JsonSerializerOptions { WriteIndented = true });

    private static void Plots(Settings s, IReadOnlyList<Run> runs)
    {
        var loss = new Plot();
        foreach (var g in runs.GroupBy(r => r.Optimizer))
        {
            var curves = g.Select(r => TrailingMean(r.Losses, s.Window)).ToArray();
            var xs = Enumerable.Range(0, s.Steps).Select(i => (double)i).ToArray();
            var mean = xs.Select((_, i) => curves.Average(c => c[i])).ToArray();
            var std = xs.Select((_, i) => Math.Sqrt(curves.Sum(c => (c[i] - mean[i]) * (c[i] - mean[i])) / Math.Max(1, curves.Length - 1))).ToArray();
            var band = loss.Add.FillY(xs, mean.Zip(std, (m, d) => m - d).ToArray(), mean.Zip(std, (m, d) => m + d).ToArray());
            var line = loss.Add.ScatterLine(xs, mean);
            line.LegendText = g.Key;
            band.FillColor = line.Color.WithAlpha(0.2);
            band.LineWidth = 0;
        }
        loss.XLabel("step"); loss.YLabel($"training loss (trailing mean, W = {s.Window})"); loss.ShowLegend(Alignment.UpperRight);
        AtomicFile.WriteAllBytes(Path.Combine(s.Out, "loss.png"), loss.GetImageBytes(900, 550, ImageFormat.Png));

        var lr = new Plot();
        foreach (var r in runs.Where(r => r.Seed == 0))
            lr.Add.ScatterLine(r.Curve.Select(c => (double)c.Step).ToArray(), r.Curve.Select(c => c.Lr).ToArray()).LegendText = r.Optimizer;
        lr.XLabel("step"); lr.YLabel("learning rate"); lr.ShowLegend(Alignment.UpperRight);
        AtomicFile.WriteAllBytes(Path.Combine(s.Out, "lr.png"), lr.GetImageBytes(900, 550, ImageFormat.Png));

        var probed = runs.Where(r => r.Seed == 0 && r.Curve.Any(c => c.Sharpness is not null)).ToArray();
        if (probed.Length == 0) return;
        var mp = new Multiplot();
        mp.AddPlots(probed.Length);
        mp.Layout = new ScottPlot.MultiplotLayouts.Grid(1, probed.Length);
        for (int i = 0; i < probed.Length; i++)
        {
            var p = mp.GetPlot(i);
            var pts = probed[i].Curve.Where(c => c.Sharpness is not null).ToArray();
            p.Add.ScatterLine(pts.Select(c => (double)c.Step).ToArray(), pts.Select(c => c.Sharpness!.Value).ToArray()).LegendText = "λmax (probe batch)";
            var edge = p.Add.ScatterLine(probed[i].Curve.Select(c => (double)c.Step).ToArray(), probed[i].Curve.Select(c => 2 / c.Lr).ToArray());
            edge.LinePattern = LinePattern.Dashed;
            edge.LegendText = "2/η";
            p.Title(probed[i].Optimizer); p.XLabel("step"); p.YLabel("sharpness");
            p.Axes.SetLimitsY(0, 1.2 * Math.Max(pts.Max(c => c.Sharpness!.Value), probed[i].Curve.Min(c => 2 / c.Lr)));
            p.ShowLegend(Alignment.UpperRight);
        }
        AtomicFile.WriteAllBytes(Path.Combine(s.Out, "sharpness.png"), mp.Render(450 * probed.Length, 450).GetImageBytes(ImageFormat.Png));
    }
}
