using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Curvature.Autodiff;
using Curvature.Engine;
using Curvature.Lab.Reporting;
using Curvature.Models;
using Curvature.Optimizers;
using Curvature.Training;
using Curvature.Training.Distributed;
using ScottPlot;

namespace Curvature.Lab;

/// <summary>
/// <c>Lab train</c>: trains one model (the MLP or ResNet-20 on Fashion-MNIST, the GPT on a character corpus) with
/// SGD, momentum or Adam and writes <c>steps.csv</c>, <c>summary.json</c> (final train and test loss and accuracy,
/// or validation loss and bits per character), <c>model.safetensors</c>, <c>checkpoint.safetensors</c> (also every
/// <c>--checkpoint-every</c> steps; <c>--resume</c> continues from it exactly) and <c>loss.png</c>.
/// </summary>
public static class Train
{
    /// <summary>The models the verb trains.</summary>
    public static readonly string[] ModelNames = ["mlp", "resnet20", "gpt"];

    /// <summary>The default corpus, the repository's own copy (relative to its root, where the README's commands run).</summary>
    public const string DefaultText = "data/tinyshakespeare.txt";

    /// <summary>
    /// The default corpus as a path that exists from the working folder when it can: <see cref="DefaultText"/>
    /// there, else the copy in the repository the program was built from (found by walking up from the program
    /// to the folder holding <c>Engine.sln</c>), so the Lab runs from any folder of a clone.
    /// </summary>
    public static string DefaultTextPath()
    {
        if (File.Exists(DefaultText)) return DefaultText;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Engine.sln")) && File.Exists(Path.Combine(dir.FullName, DefaultText)))
                return Path.Combine(dir.FullName, DefaultText);
        return DefaultText;
    }

    /// <summary>Everything a run depends on.</summary>
    public sealed record Settings(string Model, string Optimizer, double LearningRate, double Momentum, double WeightDecay, string Schedule, int Warmup,
        int Batch, int? Steps, int? Epochs, int EvalEvery, int EvalBatches, bool Augment, GptConfig Gpt, int MlpWidth, string Activation,
        string Data, string Text, string Out, int CheckpointEvery, bool Resume, ulong Seed, int? TrainLimit, Engine.Device? Device = null,
        double DivergenceFactor = 100, bool Overwrite = false, ICommunicator? Ranks = null, bool SyncBatchNorm = false);

    /// <summary>η at a step: linear warm-up over <paramref name="warmup"/> steps, then constant or a cosine decay to zero at the last step.</summary>
    public static double LearningRateAt(double lr, string schedule, int warmup, int step, int steps)
    {
        double scale = warmup > 0 && step < warmup ? (step + 1) / (double)warmup : 1;
        if (schedule == "cosine" && step >= warmup)
            scale = 0.5 * (1 + Math.Cos(Math.PI * (step - warmup) / Math.Max(1, steps - warmup)));
        return lr * scale;
    }

    internal static Command Command(TextWriter output0)
    {
        var common = new Cli.CommonOptions();
        var distributed = new DistributedOptions();
        var model = Options.OneOf("--model", "Model", "mlp", ModelNames);
        var optimizer = new Option<string?>("--optimizer") { Description = "Update rule: sgd, momentum, nesterov, adam, adamw (default: adamw for gpt, momentum otherwise)" };
        optimizer.AcceptOnlyFromAmong("sgd", "momentum", "nesterov", "adam", "adamw");
        var lr = Options.OptionalPositive("--lr", "Peak learning rate (default: mlp 0.05, resnet20 0.1, gpt 3e-3 for adamw (the GPT default), 1e-3 for adam(w) otherwise, 0.5 for the rest)");
        var momentum = Options.Number("--momentum", "Momentum μ (momentum, nesterov) or β₁ (adam, adamw), in [0, 1)", 0.9, 0, 1, maxExclusive: true);
        var weightDecay = Options.OptionalNumber("--weight-decay", "Weight decay λ (default: resnet20 5e-4, adamw 0.1, otherwise 0)", 0);
        var schedule = Options.OneOf("--schedule", "Learning-rate schedule after the warm-up", "cosine", "constant", "cosine");
        var warmup = Options.OptionalInt("--warmup", "Steps of linear learning-rate warm-up (default: gpt 100, otherwise 0)", min: 0, max: Options.MaxSteps);
        var batch = Options.Int("--batch", "Minibatch size (default: mlp and resnet20 128, gpt 32)", 0, min: 0, max: 1_000_000);
        var steps = Options.OptionalInt("--steps", "Training steps (or give --epochs)", max: Options.MaxSteps);
        var epochs = Options.OptionalInt("--epochs", "Epochs over the training images (mlp, resnet20)", max: Options.MaxSteps);
        var evalEvery = Options.Int("--eval-every", "Steps between evaluations of the held-out loss", 200);
        var evalBatches = Options.Int("--eval-batches", "GPT: random validation windows (batches) per evaluation", 20, max: 100_000);
        var augment = new Option<bool>("--augment") { Description = "resnet20/mlp: random crop (padding 2) and horizontal flip" };
        var layers = Options.Int("--layers", "GPT layers", 4, max: 256);
        var heads = Options.Int("--heads", "GPT heads", 4, max: 4096);
        var width = Options.Int("--width", "GPT width d (default 128) or MLP width (default 200)", 0, min: 0, max: 65536);
        var context = Options.Int("--context", "GPT context T", 128, max: 65536);
        var dropout = Options.Number("--dropout", "GPT dropout probability, in [0, 1)", 0.0, 0, 1, maxExclusive: true);
        var activation = Options.OneOf("--activation", "MLP activation", "tanh", "tanh", "relu");
        var data = Options.FashionMnistFolder();
        var text = new Option<string>("--text") { Description = "GPT: the character corpus", DefaultValueFactory = _ => DefaultTextPath() };
        var train = Options.OptionalInt("--train", "Use only the first N training images");
        var output_ = new Option<string>("--out") { Description = "Output folder", DefaultValueFactory = _ => "out/train" };
        var checkpointEvery = Options.Int("--checkpoint-every", "Steps between checkpoints (one is also written at the end)", 500);
        var resume = new Option<bool>("--resume") { Description = "Continue from checkpoint.safetensors in --out" };
        var overwrite = new Option<bool>("--overwrite") { Description = "Start afresh in an --out that holds another run's files (they are replaced)" };
        var divergence = Options.Number("--divergence-factor", "Stop when the minibatch loss exceeds this multiple of the first loss (0: only a non-finite loss stops); the checkpoint kept is the last sound one",
            100, 0);
        divergence.Validators.Add(r =>
        {
            try { if (r.GetValueOrDefault<double>() is var f && f is > 0 and <= 1) r.AddError($"--divergence-factor must be 0 (off) or above 1, got {f}."); }
            catch (InvalidOperationException) { }
        });
        var cmd = new Command("train", "Train a model (mlp, resnet20 on Fashion-MNIST; gpt on a character corpus); write logs, weights, checkpoints, plots");
        foreach (var o in new Option[] { model, optimizer, lr, momentum, weightDecay, schedule, warmup, batch, steps, epochs, evalEvery, evalBatches, augment,
                                         layers, heads, width, context, dropout, activation, data, text, train, output_, checkpointEvery, resume, overwrite, divergence })
            cmd.Options.Add(o);
        common.AddTo(cmd);
        distributed.AddTo(cmd);
        Options.Validate(cmd, r =>
        {
            if (r.ValueOf(steps) is null == r.ValueOf(epochs) is null) r.AddError("give exactly one of --steps and --epochs.");
            if (r.ValueOf(epochs) is not null && r.ValueOf(model) == "gpt") r.AddError("--epochs is for mlp and resnet20; give --steps for gpt.");
            if (r.ValueOf(resume) && r.ValueOf(overwrite)) r.AddError("give --resume (continue the run in --out) or --overwrite (replace it), not both.");
            if (r.ValueOf(model) == "gpt" && r.ValueOf(width) is int wd and > 0 && wd % r.ValueOf(heads) != 0)
                r.AddError($"--width {wd} is not divisible by --heads {r.ValueOf(heads)}.");
        });
        cmd.SetAction(r =>
        {
            var output = output0;
            var (device, ranks) = distributed.Start(r, common, ref output);
            string m = r.GetValue(model)!, opt = r.GetValue(optimizer) ?? (m == "gpt" ? "adamw" : "momentum");
            bool adam = opt is "adam" or "adamw";
            // The GPT's default recipe is the one that trains (docs/results/gpt-shakespeare): AdamW at 3e-3 with 100 steps of warm-up.
            int w = r.GetValue(width);
            var s = new Settings(m, opt,
                r.GetValue(lr) ?? (m == "gpt" ? (opt == "adamw" ? 3e-3 : adam ? 1e-3 : 0.5) : m == "resnet20" ? (adam ? 1e-3 : 0.1) : (adam ? 1e-3 : 0.05)),
                r.GetValue(momentum),
                r.GetValue(weightDecay) ?? (opt == "adamw" ? 0.1 : m == "resnet20" ? 5e-4 : 0),
                r.GetValue(schedule)!, r.GetValue(warmup) ?? (m == "gpt" ? 100 : 0),
                r.GetValue(batch) is > 0 and var b ? b : m == "gpt" ? 32 : 128,
                r.GetValue(steps), r.GetValue(epochs), r.GetValue(evalEvery), r.GetValue(evalBatches), r.GetValue(augment),
                new GptConfig(Context: r.GetValue(context), Layers: r.GetValue(layers), Heads: r.GetValue(heads), Width: w > 0 ? w : 128, Dropout: r.GetValue(dropout)),
                w > 0 ? w : 200, r.GetValue(activation)!, r.GetValue(data)!, r.GetValue(text)!, r.GetValue(output_)!, r.GetValue(checkpointEvery),
                r.GetValue(resume), r.GetValue(common.Seed), r.GetValue(train), device, r.GetValue(divergence), r.GetValue(overwrite), ranks, distributed.Sync(r));
            var summary = Execute(s, output, string.Join(' ', r.Tokens.Select(t => t.Value)));
            if (r.GetValue(common.Json) is { } path && ranks.Rank == 0) AtomicFile.WriteAllText(path, summary);
            return 0;
        });
        return cmd;
    }

    /// <summary>Runs the training and writes its files; returns summary.json's text.</summary>
    public static string Execute(Settings s, TextWriter output, string commandLine)
    {
        var task = TrainingTask.Create(s.Model switch { "mlp" => "mlp-fmnist", "resnet20" => "resnet20-fmnist", _ => "gpt-shakespeare" },
            s.Data, s.Text, s.Batch, s.TrainLimit, s.Augment, s.MlpWidth, s.Activation, s.Gpt, s.EvalBatches);
        task.Device = s.Device ?? Engine.CpuDevice.Instance;
        long wanted = s.Steps ?? (long)s.Epochs!.Value * task.StepsPerEpoch;
        if (wanted > Options.MaxSteps)
            throw new UsageException($"--epochs {s.Epochs} is {wanted:N0} steps ({task.StepsPerEpoch:N0} per epoch); a run takes at most {Options.MaxSteps:N0} steps.");
        int totalSteps = (int)wanted;
        var ranks = s.Ranks ?? SingleProcess.Instance;
        bool root = ranks.Rank == 0;
        using var folder = RunFolder.Open(ranks, s.Out, s.Resume, s.Overwrite);
        var model = task.CreateModel(s.Seed);
        var optimizer = CreateOptimizer(s).Create(model.NamedParameters().Select(p => p.Name).ToArray(), s.Seed);
        string checkpointPath = Path.Combine(s.Out, "checkpoint.safetensors");
        if (s.Resume && !File.Exists(checkpointPath)) throw new LabException($"--resume: there is no {checkpointPath} to continue from.");
        output.WriteLine($"train: {task.Describe}; {model.ParameterCount():N0} parameters; {s.Optimizer} η {s.LearningRate:G3} ({s.Schedule}, warm-up {s.Warmup}), " +
                         $"μ {s.Momentum}, λ {s.WeightDecay:G3}, batch {s.Batch}" + (ranks.Size > 1 ? $" ({ranks.Size} ranks, {s.Batch / ranks.Size}+ each)" : "") + $", {totalSteps} steps");
        Evaluation? last = null;
        var evaluator = new Evaluator(["eval_train_loss", "eval_heldout_loss", "eval_heldout_accuracy"], m =>
        {
            last = task.Evaluate(m);
            return [last.TrainLoss, last.HeldOutLoss, last.HeldOutAccuracy];
        });
        string F(double v) => v.ToString("R", CultureInfo.InvariantCulture);
        TrainingResult result = null!;
        ProgressDisplay.Run(output, [($"{s.Model}", totalSteps)], tasks =>
        {
            double trailing = double.NaN;
            result = new Trainer
            {
                Model = model, Optimizer = optimizer, Batches = task.Batches(s.Seed), Steps = totalSteps, Seed = s.Seed,
                Dropout = s.Model == "gpt" && s.Gpt.Dropout > 0,
                LearningRate = step => LearningRateAt(s.LearningRate, s.Schedule, s.Warmup, step, totalSteps),
                Evaluator = evaluator, EvalEvery = s.EvalEvery, Folder = s.Out, CheckpointEvery = s.CheckpointEvery, Resume = s.Resume, Communicator = ranks, SyncBatchNorm = s.SyncBatchNorm,
                DivergenceFactor = s.DivergenceFactor > 0 ? s.DivergenceFactor : null,
                Identity = new Dictionary<string, string>
                {
                    ["model"] = s.Model, ["task"] = task.Describe, ["data"] = task.DataFingerprint, ["optimizer"] = s.Optimizer, ["lr"] = F(s.LearningRate), ["momentum"] = F(s.Momentum),
                    ["weight_decay"] = F(s.WeightDecay), ["schedule"] = s.Schedule, ["warmup"] = s.Warmup.ToString(CultureInfo.InvariantCulture),
                    ["batch"] = s.Batch.ToString(CultureInfo.InvariantCulture),
                    ["seed"] = s.Seed.ToString(CultureInfo.InvariantCulture), ["eval_every"] = s.EvalEvery.ToString(CultureInfo.InvariantCulture),
                },
                Metadata = new Dictionary<string, string> { ["model"] = s.Model, ["command"] = commandLine },
                OnResume = first => output.WriteLine($"train: resuming at {first}"),
                OnStep = r =>
                {
                    trailing = double.IsNaN(trailing) ? r.Loss : 0.95 * trailing + 0.05 * r.Loss;
                    tasks[0].Report(r.Step + 1, $"loss {trailing:0.0000}  η {r.Log.LearningRate:G3}" + (r.Evaluation is { } e ? $"  held-out {e[1]:0.0000} ({e[2]:P1})" : ""));
                },
            }.Run();
        });
        last ??= task.Evaluate(model);
        double seconds = result.Seconds;
        var traffic = ranks.Traffic;
        if (!root) return "";
        task.WriteWeights(Path.Combine(s.Out, "model.safetensors"), model);
        // A batch beside the weights, so `spectrum --weights model.safetensors --batch probe_batch.safetensors` works at once.
        task.WriteProbeBatch(Path.Combine(s.Out, "probe_batch.safetensors"), task.ProbeBatch(s.Model == "gpt" ? 8 : 128));
        var summary = JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["model"] = s.Model,
            ["description"] = task.Describe,
            ["parameters"] = model.ParameterCount(),
            ["optimizer"] = s.Optimizer,
            ["lr"] = s.LearningRate,
            ["schedule"] = s.Schedule,
            ["batch"] = s.Batch,
            ["steps"] = totalSteps,
            ["seconds"] = seconds,
            ["ranks"] = ranks.Size,
            ["collectives"] = new Dictionary<string, object> { ["calls"] = traffic.Calls, ["bytes"] = traffic.Bytes, ["seconds"] = traffic.Seconds },
            ["final"] = last.ToDictionary(),
            ["command"] = "./lab " + commandLine,
        }, new JsonSerializerOptions { WriteIndented = true });
        AtomicFile.WriteAllText(Path.Combine(s.Out, "summary.json"), summary);
        if (ranks.Size > 1)
            output.WriteLine($"distributed: {ranks.Describe}; collectives {traffic.Calls:N0} calls, {traffic.Bytes / 1e6:0.00} MB from rank 0, {traffic.Seconds:0.00} s " +
                             $"({1e3 * traffic.Seconds / Math.Max(1, result.StepsRun):0.000} ms and {traffic.Bytes / 1e3 / Math.Max(1, result.StepsRun):0.0} kB per step, waiting for the slower rank included)");
        Plot(s, result.Losses, result.Evaluations.Select(e => (e.Step, e.Values[1])).ToList());
        output.WriteLine(string.Join(", ", last.ToDictionary().Select(kv => $"{kv.Key} {kv.Value:0.0000}")) + $"; {seconds:0.0} s; files in {s.Out}");
        return summary;
    }

    /// <summary>The verb's optimizer as a registry spec: its rate, momentum (β₁ for Adam) and weight decay.</summary>
    private static OptimizerSpec CreateOptimizer(Settings s)
    {
        var spec = OptimizerSpec.Parse(s.Optimizer).With("lr", s.LearningRate).With("wd", s.WeightDecay);
        return s.Optimizer switch
        {
            "sgd" => spec,
            "momentum" or "nesterov" => spec.With("mu", s.Momentum),
            _ => spec.With("beta1", s.Momentum),
        };
    }

    private static void Plot(Settings s, double[] losses, List<(int Step, double HeldOutLoss)> evals)
    {
        // Log axis, a bias-corrected exponential average (no kink where a trailing window would fill), the held-out loss as markers.
        var xs = Enumerable.Range(0, losses.Length).Select(i => (double)i).ToArray();
        var plot = new Plot();
        var train = plot.Add.ScatterLine(xs, RunMetrics.ExponentialAverage(losses, 50).Select(LogAxis.Of).ToArray());
        train.LegendText = "training loss (minibatch, exponential average, span 50)";
        if (evals.Count > 0)
        {
            var held = plot.Add.ScatterLine(evals.Select(e => (double)e.Step).ToArray(), evals.Select(e => LogAxis.Of(e.HeldOutLoss)).ToArray());
            held.LegendText = s.Model == "gpt" ? "validation loss" : "test loss";
            held.MarkerSize = 5;
        }
        LogAxis.Label(plot);
        plot.Title($"train {s.Model}: {s.Optimizer} η {s.LearningRate.ToString("G3", CultureInfo.InvariantCulture)} ({s.Schedule}), batch {s.Batch}, {losses.Length} steps, seed {s.Seed}", 13);
        plot.XLabel("step"); plot.YLabel("cross-entropy (log scale)"); plot.ShowLegend(Edge.Bottom);
        AtomicFile.WriteAllBytes(Path.Combine(s.Out, "loss.png"), plot.GetImageBytes(900, 550, ImageFormat.Png));
    }
}
