using System.CommandLine;
using System.Globalization;
using Curvature.Engine;
using Curvature.Lab.Reporting;
using Curvature.Models;
using Curvature.Training;
using Curvature.Training.Distributed;

namespace Curvature.Lab;

/// <summary>
/// <c>Lab compare</c>: trains one model per (optimizer, seed) on a task and reports, as mean ± std and a 95 %
/// Student-t interval over seeds: steps to a training-loss target and steps and epochs to a validation-loss target,
/// final validation loss (bits per character and perplexity for text), stability (mean trailing-window loss
/// variance), test accuracy, expected calibration error, wall-clock, FLOPs per sample (training and curvature probes
/// apart), the share of time probing, and the audit of each curvature estimate against a converged Lanczos λmax;
/// then, per metric, a verdict of each proposed rule against the best baseline by a paired t-test over seeds.
/// Curvature probes take the training-mode loss on a fixed probe batch by default (<c>--probe-mode</c>). Each run
/// folder holds <c>steps.csv</c>, <c>init.safetensors</c>, <c>probe_batch.safetensors</c> and its checkpoint.
/// </summary>
public static class Compare
{
    /// <summary>The tasks (see <see cref="TrainingTask"/>).</summary>
    public static readonly string[] Tasks = TrainingTask.Names;

    /// <summary>One configuration under comparison: a label, what it is, whether it is a proposed rule, and how to build its optimizer.</summary>
    public sealed record Variant(string Label, string Description, bool Proposed, Func<IReadOnlyList<string>, ulong, Optimizers.IOptimizer> Create, bool LogsSharpness = false);

    /// <summary>The variants for optimizer specs, with the verb's curvature defaults for keys a spec does not set.</summary>
    public static Variant[] ForSpecs(IEnumerable<OptimizerSpec> specs, IReadOnlyDictionary<string, double> defaults) =>
        specs.Select(s => new Variant(s.Text, s.Describe(defaults), s.Entry.Proposed, (ps, seed) => s.Create(ps, seed, defaults), s.Entry.LogsSharpness)).ToArray();

    /// <summary>Settings of a comparison.</summary>
    public sealed record Settings(string Task, Variant[] Variants, int Seeds, int Steps, int Batch, int Train, int Validation, int ProbeBatch,
        bool ProbeTrainingMode, int AuditEvery, int EvalEvery, double? TargetLoss, double? TargetValLoss, int Window, int ProbeEvery,
        string Data, string Out, string? Title = null, int CheckpointEvery = 100, bool Resume = false, string Text = Lab.Train.DefaultText,
        Device? Device = null, string? Init = null, bool ResetHead = false, int[]? Classes = null, GptConfig? Gpt = null, int EvalBatches = 20,
        int LightProbeIterations = 20, ICommunicator? Ranks = null, bool SyncBatchNorm = false)
    {
        /// <summary>The ranks the runs are spread over (one process unless <c>--distributed</c>).</summary>
        public ICommunicator Communicator => Ranks ?? SingleProcess.Instance;
        /// <summary>True where files are written: one process, or rank 0.</summary>
        public bool WritesFiles => Communicator.Rank == 0;

        /// <summary>The initial weights of a seed's runs: <see cref="Init"/> with <c>{seed}</c> replaced, or null for a fresh initialization.</summary>
        public string? InitFor(int seed) => Init?.Replace("{seed}", seed.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal);
    }

    /// <summary>One (optimizer, seed) run.</summary>
    /// <param name="Optimizer">The variant's label.</param>
    /// <param name="Seed">The seed (model initialization and data order).</param>
    /// <param name="Result">The trainer's result: losses, rates, probes, audits, evaluations, costs.</param>
    /// <param name="TestAccuracy">Final test accuracy (text: validation next-character accuracy).</param>
    /// <param name="Ece">Final expected calibration error on the same data.</param>
    /// <param name="ValLoss">Final validation loss.</param>
    /// <param name="StepsPerEpoch">Minibatches per epoch, to turn steps into epochs.</param>
    /// <param name="StepsToTarget">Steps to the training-loss target (trailing mean), or null.</param>
    /// <param name="StepsToValTarget">Steps to the validation-loss target, or null.</param>
    /// <param name="Batch">The minibatch size, for FLOPs per sample.</param>
    /// <param name="StabilityLimit">The rule's η·λmax stability limit (2 for GD and L4, 2 + 2μ with heavy-ball momentum, (2 + 2μ)/(1 + 2μ) with Nesterov's, (2 + 2β₁)/(1 − β₁) for CAEO over Adam), for the plots' edge line; NaN where λmax of the raw Hessian has no such edge (Adam, Hi-DLR, DCAO's moving μ).</param>
    /// <param name="RuleBound">CAEO's own target η·λmax = limit − δ, drawn beside the edge; NaN for other rules.</param>
    public sealed record Run(string Optimizer, int Seed, TrainingResult Result, double TestAccuracy, double Ece, double ValLoss, int StepsPerEpoch,
        int Batch, int? StepsToTarget = null, int? StepsToValTarget = null, double StabilityLimit = 2, double RuleBound = double.NaN)
    {
        /// <summary>Minibatch loss at each step.</summary>
        public double[] Losses => Result.Losses;
        /// <summary>Training FLOPs per sample.</summary>
        public double TrainFlopsPerSample => Result.TrainFlops / ((double)Result.Losses.Length * Batch);
        /// <summary>Probe FLOPs per sample.</summary>
        public double ProbeFlopsPerSample => Result.ProbeFlops / ((double)Result.Losses.Length * Batch);
        /// <summary>(estimate / converged λmax) at each audited probe.</summary>
        public double[] AuditRatios => Result.Sharpness.Zip(Result.AuditSharpness, (e, a) => e is { } x && a is { } y && y != 0 ? x / y : double.NaN).Where(double.IsFinite).ToArray();
        /// <summary>(steps done, validation loss) at each evaluation.</summary>
        public IReadOnlyList<(int Step, double Value)> ValLosses => Result.Evaluations.Select(e => (e.Step, e.Values[0])).ToArray();
    }

    /// <summary>The options compare and sweep share: the task, the runs, the probes and where their files go.</summary>
    internal sealed class RunOptions
    {
        public readonly Cli.CommonOptions Common = new();
        public readonly DistributedOptions Distributed = new();
        public readonly Option<string> Task = Options.OneOf("--task", "Task", "mlp-fmnist", Tasks);
        public readonly Option<int> Seeds = Options.Int("--seeds", "Seeds per configuration", 3, max: 1000);
        public readonly Option<int> Steps = Options.Int("--steps", "Training steps per run", 300, max: Options.MaxSteps);
        public readonly Option<int> Batch = Options.Int("--batch", "Minibatch size", 128, max: 1_000_000);
        public readonly Option<int> Train = Options.Int("--train", "Training images used (the first N; never the validation images)", 10000);
        public readonly Option<int> Validation = Options.Int("--val", "Image tasks: the last N training images, held out for validation (never trained on)", 5000);
        public readonly Option<int> ProbeBatch = Options.Int("--probe-batch", "Examples in the fixed curvature probe batch", 32, max: 1_000_000);
        public readonly Option<string> ProbeMode = Options.OneOf("--probe-mode", "Loss whose curvature probes measure: train (the objective being descended: BatchNorm on batch statistics) or eval (running statistics)", "train", "train", "eval");
        public readonly Option<int> AuditEvery = Options.Int("--audit-every", "Probes between audits of the estimate against a converged Lanczos λmax (0: none)", 10, min: 0);
        public readonly Option<int> EvalEvery = Options.Int("--eval-every", "Steps between validation-loss evaluations (one is also made at the end)", 50);
        public readonly Option<double?> Target = Options.OptionalPositive("--target-loss", "Training loss (trailing mean) to count steps to; default: the best final loss × 1.2");
        public readonly Option<double?> TargetVal = Options.OptionalPositive("--target-val-loss", "Validation loss to count steps and epochs to; default: the best final validation loss × 1.1");
        public readonly Option<int> Window = Options.Int("--window", "Trailing window W for stability and the target", 20, min: 2);
        public readonly Option<int> ProbeEvery = Options.Int("--probe-every", "Steps T between curvature probes (an optimizer spec's probe_every overrides it)", 10);
        public readonly Option<string> Data = Options.FashionMnistFolder();
        public readonly Option<string> Text = new("--text") { Description = "gpt-shakespeare: the character corpus", DefaultValueFactory = _ => Lab.Train.DefaultTextPath() };
        public readonly Option<string> Out;
        public readonly Option<int> CheckpointEvery = Options.Int("--checkpoint-every", "Steps between checkpoints of each run (also written at the end)", 100);
        public readonly Option<bool> Resume = new("--resume") { Description = "Continue every run from its checkpoint in --out (runs without one start afresh; a run with other settings is refused)" };
        public readonly Option<bool> Overwrite = new("--overwrite") { Description = "Start afresh in an --out that holds earlier runs (their checkpoints, logs and reports are deleted first)" };
        public readonly Option<string?> Init = new("--init") { Description = "Start every run from these weights (safetensors, PyTorch names; {seed} in the path is replaced by the run's seed) instead of a fresh initialization" };
        public readonly Option<bool> ResetHead = new("--reset-head") { Description = "With --init: keep a fresh classifier head (fine-tuning on other classes)" };
        public readonly Option<int> Layers = Options.Int("--layers", "gpt-shakespeare: GPT layers", 4, max: 256);
        public readonly Option<int> Heads = Options.Int("--heads", "gpt-shakespeare: GPT heads", 4, max: 4096);
        public readonly Option<int> Width = Options.Int("--width", "gpt-shakespeare: GPT width d", 128, max: 65536);
        public readonly Option<int> Context = Options.Int("--context", "gpt-shakespeare: GPT context T", 128, max: 65536);
        public readonly Option<int> EvalBatches = Options.Int("--eval-batches", "gpt-shakespeare: validation windows (batches) per evaluation", 20, max: 100_000);
        public readonly Option<int> LightProbe = Options.Int("--light-probe-iters", "Lanczos iterations of the light sharpness probe every T steps for optimizers that do not probe (0: none); outside their wall-clock", 20, min: 0, max: 1000);
        public readonly Option<string?> Classes = new("--classes") { Description = "Image tasks: train, validate and test on these classes only (e.g. 0-4 or 5,6,7)" };

        public RunOptions(string defaultOut)
        {
            Out = new Option<string>("--out") { Description = "Output folder", DefaultValueFactory = _ => defaultOut };
        }

        public void AddTo(Command c)
        {
            Classes.Validators.Add(r =>
            {
                try { ParseClasses(r.GetValueOrDefault<string?>()); }
                catch (FormatException e) { r.AddError(e.Message); }
            });
            foreach (var o in new Option[] { Task, Seeds, Steps, Batch, Train, Validation, ProbeBatch, ProbeMode, AuditEvery, EvalEvery, Target, TargetVal, Window, ProbeEvery, Data, Text, Out,
                                             CheckpointEvery, Resume, Overwrite, Init, ResetHead, Classes, LightProbe, Layers, Heads, Width, Context, EvalBatches })
                c.Options.Add(o);
            Options.Validate(c, r =>
            {
                if (r.ValueOf(Resume) && r.ValueOf(Overwrite)) r.AddError("give --resume (continue the runs in --out) or --overwrite (replace them), not both.");
                if (r.ValueOf(Width) % Math.Max(1, r.ValueOf(Heads)) != 0) r.AddError($"--width {r.ValueOf(Width)} is not divisible by --heads {r.ValueOf(Heads)}.");
            });
            Common.AddTo(c);
            Distributed.AddTo(c);
        }

        /// <summary>Starts the ranks (<c>--distributed</c>; <paramref name="output"/> goes quiet on ranks other than 0) and resolves the device.</summary>
        public (Device Device, ICommunicator Ranks) Start(ParseResult r, ref TextWriter output) => Distributed.Start(r, Common, ref output);

        public Settings Build(ParseResult r, Device device, Variant[] variants, string? title, ICommunicator? ranks = null) =>
            new(r.GetValue(Task)!, variants, r.GetValue(Seeds), r.GetValue(Steps), r.GetValue(Batch), r.GetValue(Train), r.GetValue(Validation), r.GetValue(ProbeBatch),
                r.GetValue(ProbeMode) == "train", r.GetValue(AuditEvery), r.GetValue(EvalEvery), r.GetValue(Target), r.GetValue(TargetVal), r.GetValue(Window),
                r.GetValue(ProbeEvery), r.GetValue(Data)!, r.GetValue(Out)!, title, r.GetValue(CheckpointEvery), r.GetValue(Resume), r.GetValue(Text)!, device,
                r.GetValue(Init), r.GetValue(ResetHead), ParseClasses(r.GetValue(Classes)),
                new GptConfig(Context: r.GetValue(Context), Layers: r.GetValue(Layers), Heads: r.GetValue(Heads), Width: r.GetValue(Width)), r.GetValue(EvalBatches), r.GetValue(LightProbe), ranks, Distributed.Sync(r));

        /// <summary>Locks --out for the verb's run (refusing a folder of earlier runs unless --resume or --overwrite); rank 0's alone over several ranks.</summary>
        public RunFolder? Open(ParseResult r, ICommunicator ranks) => RunFolder.Open(ranks, r.GetValue(Out)!, r.GetValue(Resume), r.GetValue(Overwrite));

        /// <summary>Runs the settings and writes the JSON copy if asked; the verb's action.</summary>
        public int Execute(ParseResult r, Settings s, TextWriter output)
        {
            using var folder = Open(r, s.Communicator);
            // The parse tokens start with the verb itself.
            var runs = Compare.Execute(s, output, string.Join(' ', r.Tokens.Select(t => t.Value)));
            if (r.GetValue(Common.Json) is { } path && s.WritesFiles) AtomicFile.WriteAllText(path, ComparisonReport.SummaryJson(s, runs));
            return 0;
        }
    }

    /// <summary>Class numbers as "0-4" or "5,6,7" (null: all); a malformed list throws naming it.</summary>
    public static int[]? ParseClasses(string? text)
    {
        if (string.IsNullOrWhiteSpace(text)) return null;
        var classes = new List<int>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var ends = part.Split('-');
            if (ends.Length > 2 || !ends.All(e => int.TryParse(e, NumberStyles.None, CultureInfo.InvariantCulture, out int c) && c <= 9))
                throw new FormatException($"--classes: '{part}' is not a class from 0 to 9 or a range such as 0-4.");
            int lo = int.Parse(ends[0], CultureInfo.InvariantCulture), hi = int.Parse(ends[^1], CultureInfo.InvariantCulture);
            if (hi < lo) throw new FormatException($"--classes: the range '{part}' runs backwards.");
            classes.AddRange(Enumerable.Range(lo, hi - lo + 1));
        }
        return classes.Distinct().Order().ToArray();
    }

    /// <summary>An option holding optimizer specs, checked at parse time (an unknown name or key exits with code 2, listing the valid ones).</summary>
    internal static Option<string> SpecsOption(string name, string description, string defaultValue)
    {
        var o = new Option<string>(name) { Description = description, DefaultValueFactory = _ => defaultValue };
        o.Validators.Add(r =>
        {
            try { OptimizerSpec.ParseList(r.GetValueOrDefault<string>() ?? ""); }
            catch (OptimizerSpecException e) { r.AddError($"{name}: {e.Message}"); }
        });
        return o;
    }

    /// <summary>The curvature keys a verb's options set for every spec that does not set them itself.</summary>
    internal static Dictionary<string, double> CurvatureDefaults(int probeEvery, double? delta = null, string? estimator = null)
    {
        var d = new Dictionary<string, double> { ["probe_every"] = probeEvery };
        if (delta is { } x) d["delta"] = x;
        if (estimator is not null) d["estimator"] = Array.IndexOf(OptimizerRegistry.Find("caeo")!.Find("estimator")!.Choices!, estimator);
        return d;
    }

    internal static Command Command(TextWriter output0)
    {
        var run = new RunOptions("out/compare");
        var optimizers = SpecsOption("--optimizers",
            $"Comma-separated optimizer specs, name[:key=value]... (e.g. sgd:lr=0.1,momentum:lr=0.05:mu=0.9,caeo:lr=0.5:delta=0.5). {OptimizerRegistry.Help()}",
            "sgd,momentum,adam,adamw,l4,hidlr,dcao,caeo");
        var delta = Options.Number("--delta", "CAEO's margin δ below the edge, in [0, 2), for specs that do not set delta", 0.5, 0, 2, maxExclusive: true);
        var estimator = Options.OneOf("--estimator", "CAEO's λmax estimator, for specs that do not set estimator", "power", "power", "hutchinson", "kfac", "batch");
        var preset = new Option<string?>("--preset") { Description = "tuned: choose each optimizer's rate on the validation loss first; transfer: pretrain on --pretrain-classes, fine-tune on --finetune-classes" };
        preset.AcceptOnlyFromAmong("tuned", "transfer");
        var tuneGrid = Options.PositiveList("--tune-grid", "tuned: multipliers of each optimizer's default rate to try", [0.1, 0.3, 1, 3, 10]);
        var tuneSteps = Options.Int("--tune-steps", "tuned: steps of each grid run (default: a third of --steps)", 0, min: 0, max: Options.MaxSteps);
        var tuneSeeds = Options.Int("--tune-seeds", "tuned: seeds of each grid point", 1, max: 1000);
        var pretrain = SpecsOption("--pretrain", "transfer: the optimizers that pretrain (CAEO and the best baseline)", "caeo,momentum");
        var pretrainClasses = new Option<string>("--pretrain-classes") { Description = "transfer: classes of the pretraining task", DefaultValueFactory = _ => "0-4" };
        var finetuneClasses = new Option<string>("--finetune-classes") { Description = "transfer: classes of the fine-tuning task", DefaultValueFactory = _ => "5-9" };
        foreach (var o in new[] { pretrainClasses, finetuneClasses })
            o.Validators.Add(r =>
            {
                try { ParseClasses(r.GetValueOrDefault<string>()); }
                catch (FormatException e) { r.AddError(e.Message.Replace("--classes", o.Name, StringComparison.Ordinal)); }
            });
        var cmd = new Command("compare", "Train with several optimizers and seeds; report targets, validation loss, stability, accuracy, calibration, cost, audits and verdicts");
        foreach (var o in new Option[] { optimizers, delta, estimator, preset, tuneGrid, tuneSteps, tuneSeeds, pretrain, pretrainClasses, finetuneClasses }) cmd.Options.Add(o);
        run.AddTo(cmd);
        Options.Validate(cmd, r =>
        {
            if (r.ValueOf(preset) == "transfer" && r.ValueOf(run.Task) == "gpt-shakespeare") r.AddError("--preset transfer is for the image tasks (it splits the classes).");
            if (r.ValueOf(preset) is not null && r.ValueOf(run.Init) is not null) r.AddError($"--preset {r.ValueOf(preset)} chooses its own starting weights; leave out --init.");
        });
        cmd.SetAction(r =>
        {
            var output = output0;
            var (device, ranks) = run.Start(r, ref output);
            var defaults = CurvatureDefaults(r.GetValue(run.ProbeEvery), r.GetValue(delta), r.GetValue(estimator));
            var specs = OptimizerSpec.ParseList(r.GetValue(optimizers)!);
            var s = run.Build(r, device, ForSpecs(specs, defaults), null, ranks);
            using var folder = run.Open(r, ranks);
            string commandLine = string.Join(' ', r.Tokens.Select(t => t.Value));
            IReadOnlyList<Run> runs;
            switch (r.GetValue(preset))
            {
                case "tuned":
                    int steps = r.GetValue(tuneSteps) is > 0 and var t ? t : Math.Max(1, s.Steps / 3);
                    runs = ComparePresets.Tuned(s, specs, defaults, r.GetValue(tuneGrid)!, steps, r.GetValue(tuneSeeds), output, commandLine);
                    break;
                case "transfer":
                    runs = ComparePresets.Transfer(s, ForSpecs(OptimizerSpec.ParseList(r.GetValue(pretrain)!), defaults),
                        ParseClasses(r.GetValue(pretrainClasses))!, ParseClasses(r.GetValue(finetuneClasses))!, output, commandLine);
                    break;
                default:
                    runs = Execute(s, output, commandLine);
                    break;
            }
            if (r.GetValue(run.Common.Json) is { } path && s.WritesFiles) AtomicFile.WriteAllText(path, ComparisonReport.SummaryJson(s, runs));
            return 0;
        });
        return cmd;
    }

    /// <summary>Runs every (optimizer, seed) and writes the report, the summary and the plots.</summary>
    public static IReadOnlyList<Run> Execute(Settings s, TextWriter output, string commandLine)
    {
        bool text = s.Task == "gpt-shakespeare";
        var task = TrainingTask.Create(s.Task, s.Data, s.Text, s.Batch, text ? null : s.Train, gpt: s.Gpt, evalBatches: s.EvalBatches,
            validation: text ? 0 : s.Validation, classes: s.Classes);
        task.Device = s.Device ?? CpuDevice.Instance;
        if (s.ResetHead && s.Init is null) throw new LabException("--reset-head needs --init.");
        // Bad initial weights are refused before anything is written.
        for (int seed = 0; seed < s.Seeds && s.Init is not null; seed++) task.LoadInitialWeights(task.CreateModel((ulong)seed), s.InitFor(seed)!, s.ResetHead);
        bool root = s.WritesFiles;
        if (root) Directory.CreateDirectory(s.Out);
        var probe = task.ProbeBatch(s.ProbeBatch);
        output.WriteLine($"compare: {task.Describe}; {string.Join(", ", s.Variants.Select(v => v.Label))}; {s.Seeds} seed{(s.Seeds == 1 ? "" : "s")} × {s.Steps} steps, batch {s.Batch}, " +
                         $"probe batch {probe.Inputs.Shape[0]} ({(s.ProbeTrainingMode ? "train" : "eval")} mode), T {s.ProbeEvery}");
        var runs = new List<Run>();
        // Wall-clock is compared across optimizers, so no run may pay for the others: every configuration first takes
        // a few untimed steps (the JIT compiles its code paths), and the order rotates with the seed, so no
        // optimizer always runs first (or last) on a machine whose speed drifts.
        WarmUp(s, task, probe);
        var order = Enumerable.Range(0, s.Seeds).SelectMany(seed => Enumerable.Range(0, s.Variants.Length).Select(j => (Variant: (j + seed) % s.Variants.Length, Seed: seed))).ToArray();
        var labels = order.Select(o => ($"{s.Variants[o.Variant].Label} seed {o.Seed}", s.Steps)).ToArray();
        ProgressDisplay.Run(output, labels, tasks =>
        {
            int t = 0;
            foreach (var (v, seed) in order)
            {
                runs.Add(TrainOne(s, task, s.Variants[v], seed, probe, tasks[t++], commandLine, output));
                if (root) AtomicFile.WriteAllText(Path.Combine(s.Out, "summary.json"), ComparisonReport.SummaryJson(s, runs));
            }
        });
        // Reports list runs by configuration, then seed.
        runs = runs.OrderBy(r => Array.FindIndex(s.Variants, v => v.Label == r.Optimizer)).ThenBy(r => r.Seed).ToList();
        // Default targets from the best group whose every run finished (a divergent run has no final loss).
        double Best(Func<Run, double> f) => runs.GroupBy(r => r.Optimizer).Select(g => g.Average(f)).Where(double.IsFinite).DefaultIfEmpty(double.NaN).Min();
        double target = s.TargetLoss ?? 1.2 * Best(r => RunMetrics.TrailingMean(r.Losses, s.Window)[^1]);
        double valTarget = s.TargetValLoss ?? 1.1 * Best(r => r.ValLoss);
        var withTargets = runs.Select(r => r with
        {
            StepsToTarget = RunMetrics.StepsTo(r.Losses, target, s.Window),
            StepsToValTarget = RunMetrics.StepsToEvaluated(r.ValLosses, valTarget),
        }).ToList();
        if (!root) return withTargets;
        AtomicFile.WriteAllText(Path.Combine(s.Out, "summary.json"), ComparisonReport.SummaryJson(s, withTargets, target, valTarget));
        if (s.TargetValLoss is { } tv && withTargets.All(r => r.StepsToValTarget is null))
            output.WriteLine($"note: no run reached --target-val-loss {tv.ToString("G4", CultureInfo.InvariantCulture)} (the best final validation loss is {withTargets.Select(r => r.ValLoss).Where(double.IsFinite).DefaultIfEmpty(double.NaN).Min():G4}).");
        if (s.TargetLoss is { } tl && withTargets.All(r => r.StepsToTarget is null))
            output.WriteLine($"note: no run reached --target-loss {tl.ToString("G4", CultureInfo.InvariantCulture)} (trailing mean over W = {s.Window} steps).");
        var report = ComparisonReport.Markdown(s, task, withTargets, target, valTarget, commandLine);
        AtomicFile.WriteAllText(Path.Combine(s.Out, "report.md"), report);
        ComparisonReport.Plots(s, withTargets, target, valTarget);
        output.WriteLine();
        output.Write(report);
        return withTargets;
    }

    /// <summary>A few untimed steps of every configuration in memory (nothing written), so the JIT's first-call cost falls on none of the timed runs.</summary>
    private static void WarmUp(Settings s, TrainingTask task, (NdArray Inputs, NdArray Targets) probe)
    {
        foreach (var variant in s.Variants)
        {
            var model = task.CreateModel(0);
            var optimizer = variant.Create(model.NamedParameters().Select(p => p.Name).ToArray(), 0);
            try
            {
                new Trainer
                {
                    Model = model, Optimizer = optimizer, Batches = task.Batches(0), Steps = 1,
                    Probe = new ProbeSettings(probe.Inputs, probe.Targets, s.ProbeTrainingMode, AuditEvery: 0), StopWhenDiverged = true,
                }.Run();
            }
            catch (TrainingException) { /* a configuration that fails at once fails again, reported, in its timed run */ }
        }
    }

    private static Run TrainOne(Settings s, TrainingTask task, Variant variant, int seed, (NdArray Inputs, NdArray Targets) probe, IProgressTask progress, string commandLine, TextWriter output)
    {
        var model = task.CreateModel((ulong)seed);
        if (s.InitFor(seed) is { } initPath) task.LoadInitialWeights(model, initPath, s.ResetHead);
        var named = model.NamedParameters();
        var optimizer = variant.Create(named.Select(p => p.Name).ToArray(), (ulong)seed);
        var dir = Path.Combine(s.Out, FolderName(variant.Label), $"seed{seed}");
        bool root = s.WritesFiles;
        if (root)
        {
            Directory.CreateDirectory(dir);
            // What any probe of this run can be recomputed from (`Lab spectrum --weights … --batch … --mode …`).
            string init = Path.Combine(dir, "init.safetensors"), probeFile = Path.Combine(dir, "probe_batch.safetensors");
            if (!File.Exists(init) || !s.Resume) task.WriteWeights(init, model);
            if (!File.Exists(probeFile) || !s.Resume) task.WriteProbeBatch(probeFile, probe);
        }
        bool text = task.Model == "gpt";
        var evaluator = new Evaluator(text ? ["val_loss", "val_accuracy", "val_bits_per_char"] : ["val_loss", "val_accuracy"], m =>
        {
            var (loss, accuracy) = task.Validate(m);
            return text ? [loss, accuracy, loss / Math.Log(2)] : [loss, accuracy];
        });
        var trainer = new Trainer
        {
            Model = model, Optimizer = optimizer, Batches = task.Batches((ulong)seed), Steps = s.Steps, Seed = (ulong)seed,
            Probe = new ProbeSettings(probe.Inputs, probe.Targets, s.ProbeTrainingMode, s.AuditEvery),
            Evaluator = evaluator, EvalEvery = s.EvalEvery, Folder = dir, CheckpointEvery = s.CheckpointEvery, Resume = s.Resume, StopWhenDiverged = true,
            Communicator = s.Communicator, SyncBatchNorm = s.SyncBatchNorm,
            // Rules that do not probe get a light probe of their own (Lanczos, warm-started, every T steps, outside their
            // wall-clock), so every optimizer's sharpness can be set against its edge.
            SharpnessEvery = variant.LogsSharpness || s.LightProbeIterations == 0 ? 0 : s.ProbeEvery, SharpnessIterations = Math.Max(1, s.LightProbeIterations), SharpnessWarmStart = false,
            Identity = new Dictionary<string, string>
            {
                ["task"] = task.Describe, ["data"] = task.DataFingerprint, ["optimizer"] = variant.Description, ["seed"] = seed.ToString(CultureInfo.InvariantCulture),
                ["batch"] = s.Batch.ToString(CultureInfo.InvariantCulture), ["probe_batch"] = probe.Inputs.Shape[0].ToString(CultureInfo.InvariantCulture),
                ["probe_mode"] = s.ProbeTrainingMode ? "train" : "eval", ["audit_every"] = s.AuditEvery.ToString(CultureInfo.InvariantCulture),
                ["eval_every"] = s.EvalEvery.ToString(CultureInfo.InvariantCulture),
                ["init"] = s.InitFor(seed) is { } ip ? $"{Path.GetFullPath(ip)}{(s.ResetHead ? " (head reset)" : "")}" : "fresh",
            },
            Metadata = new Dictionary<string, string> { ["command"] = "./lab " + commandLine },
            OnStep = r => progress.Report(r.Step + 1, $"loss {r.Loss:0.0000}  η {r.Log.LearningRate:G3}" + (r.Log.Sharpness is { } l ? $"  λmax {l:0.00}" : "")
                                                      + (r.Evaluation is { } e ? $"  val {e[0]:0.0000}" : "")),
        };
        var result = trainer.Run();
        if (result.DivergedAt is { } d)
        {
            // A divergent run is an outcome, not a failure: its figures are missing and the report counts it.
            output.WriteLine($"{variant.Label} seed {seed}: the loss at step {d} is not finite; the run stops there (its last checkpoint and steps.csv are kept in {dir}).");
            return new Run(variant.Label, seed, result, double.NaN, double.NaN, double.NaN, task.StepsPerEpoch, s.Batch, StabilityLimit: Limit(optimizer), RuleBound: Bound(optimizer));
        }
        if (root) task.WriteWeights(Path.Combine(dir, "model.safetensors"), model);
        var evaluation = task.Evaluate(model);
        double valLoss = result.Evaluations.Count > 0 ? result.Evaluations[^1].Values[0] : double.NaN;
        return new Run(variant.Label, seed, result, evaluation.HeldOutAccuracy, evaluation.HeldOutEce, valLoss, task.StepsPerEpoch, s.Batch, StabilityLimit: Limit(optimizer), RuleBound: Bound(optimizer));
    }

    /// <summary>The edge η·λmax = limit of the update rule on a quadratic (Cohen et al. 2021, appendix: GD 2, heavy ball 2 + 2μ, Nesterov (2 + 2μ)/(1 + 2μ)).</summary>
    private static double Limit(Optimizers.IOptimizer optimizer) => Optimizers.StabilityEdge.Of(optimizer);

    private static double Bound(Optimizers.IOptimizer optimizer) => optimizer is Optimizers.Caeo c ? c.StabilityLimit - c.Delta : double.NaN;

    /// <summary>An ASCII folder name for a run label ("δ=0.5" → "delta_0.5", "caeo:lr=0.5" → "caeo_lr_0.5").</summary>
    public static string FolderName(string label) => string.Concat(label.Select(ch => ch switch
    {
        'δ' => "delta",
        'α' => "alpha",
        'β' => "beta",
        _ when char.IsAsciiLetterOrDigit(ch) || ch is '-' or '.' => ch.ToString(),
        _ => "_",
    }));
}
