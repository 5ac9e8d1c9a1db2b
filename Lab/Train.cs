using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Curvature.Autodiff;
using Curvature.Engine;
using Curvature.Lab.Reporting;
using Curvature.Models;
using Curvature.Optimizers;
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

    /// <summary>The default corpus, relative to the repository root (the README's commands run there).</summary>
    public const string DefaultText = "../shared/data/tinyshakespeare.txt";

    /// <summary>Everything a run depends on.</summary>
    public sealed record Settings(string Model, string Optimizer, double LearningRate, double Momentum, double WeightDecay, string Schedule, int Warmup,
        int Batch, int? Steps, int? Epochs, int EvalEvery, int EvalBatches, bool Augment, GptConfig Gpt, int MlpWidth, string Activation,
        string Data, string Text, string Out, int CheckpointEvery, bool Resume, ulong Seed, int? TrainLimit, Engine.Device? Device = null);

    /// <summary>
    /// One training step: a training-mode forward (BatchNorm on batch statistics and updating its running
    /// statistics, dropout on when <paramref name="noise"/> is given), the gradient, then the optimiser's update.
    /// Returns the minibatch loss; a non-finite loss throws before the parameters change.
    /// </summary>
    public static double Step(Module model, IOptimizer optimizer, string loss, NdArray inputs, NdArray targets, int step, RandomGenerator? noise)
    {
        var ps = model.Parameters();
        var (value, grads) = TrainingGradient(model, loss, inputs, targets, noise);
        double l = value.ToScalar();
        if (!double.IsFinite(l)) throw new LabException($"the loss at step {step} is {l}");
        optimizer.Step(new StepContext { Step = step, Loss = l, Parameters = ps, Gradients = grads.Select(g => g.Data).ToArray() });
        return l;
    }

    /// <summary>
    /// The minibatch loss and its gradient as a training step sees them: training mode, running statistics
    /// updated, dropout drawn from <paramref name="noise"/> when given.
    /// </summary>
    public static (Tensor Value, Tensor[] Gradients) TrainingGradient(Module model, string loss, NdArray inputs, NdArray targets, RandomGenerator? noise)
    {
        var ps = model.Parameters();
        Tensor x = inputs, y = targets;
        return Derivatives.ValueAndGrad(
            p => Loss.Of(loss, model.Forward(new Bindings(ps, p, training: true) { UpdateStatistics = true, Noise = noise }, x), y),
            ps.Select(p => (Tensor)p.Value).ToArray());
    }

    /// <summary>η at a step: linear warm-up over <paramref name="warmup"/> steps, then constant or a cosine decay to zero at the last step.</summary>
    public static double LearningRateAt(double lr, string schedule, int warmup, int step, int steps)
    {
        double scale = warmup > 0 && step < warmup ? (step + 1) / (double)warmup : 1;
        if (schedule == "cosine" && step >= warmup)
            scale = 0.5 * (1 + Math.Cos(Math.PI * (step - warmup) / Math.Max(1, steps - warmup)));
        return lr * scale;
    }

    internal static Command Command(TextWriter output)
    {
        var common = new Cli.CommonOptions();
        var model = Options.OneOf("--model", "Model", "mlp", ModelNames);
        var optimizer = Options.OneOf("--optimizer", "Update rule", "momentum", "sgd", "momentum", "nesterov", "adam", "adamw");
        var lr = new Option<double?>("--lr") { Description = "Peak learning rate (default: mlp 0.05, resnet20 0.1, gpt 1e-3 for adam(w), 0.5 otherwise)" };
        var momentum = new Option<double>("--momentum") { Description = "Momentum μ (momentum, nesterov) or β₁ (adam, adamw)", DefaultValueFactory = _ => 0.9 };
        var weightDecay = new Option<double?>("--weight-decay") { Description = "Weight decay λ (default: resnet20 5e-4, adamw 0.1, otherwise 0)" };
        var schedule = Options.OneOf("--schedule", "Learning-rate schedule after the warm-up", "cosine", "constant", "cosine");
        var warmup = Options.Int("--warmup", "Steps of linear learning-rate warm-up", 0, min: 0);
        var batch = Options.Int("--batch", "Minibatch size (default: mlp and resnet20 128, gpt 32)", 0, min: 0);
        var steps = new Option<int?>("--steps") { Description = "Training steps (or give --epochs)" };
        var epochs = new Option<int?>("--epochs") { Description = "Epochs over the training images (mlp, resnet20)" };
        var evalEvery = Options.Int("--eval-every", "Steps between evaluations of the held-out loss", 200);
        var evalBatches = Options.Int("--eval-batches", "GPT: random validation windows (batches) per evaluation", 20);
        var augment = new Option<bool>("--augment") { Description = "resnet20/mlp: random crop (padding 2) and horizontal flip" };
        var layers = Options.Int("--layers", "GPT layers", 4);
        var heads = Options.Int("--heads", "GPT heads", 4);
        var width = Options.Int("--width", "GPT width d (default 128) or MLP width (default 200)", 0, min: 0);
        var context = Options.Int("--context", "GPT context T", 128);
        var dropout = new Option<double>("--dropout") { Description = "GPT dropout probability", DefaultValueFactory = _ => 0.0 };
        var activation = Options.OneOf("--activation", "MLP activation", "tanh", "tanh", "relu");
        var data = Options.FashionMnistFolder();
        var text = new Option<string>("--text") { Description = "GPT: the character corpus", DefaultValueFactory = _ => DefaultText };
        var train = new Option<int?>("--train") { Description = "Use only the first N training images" };
        var output_ = new Option<string>("--out") { Description = "Output folder", DefaultValueFactory = _ => "out/train" };
        var checkpointEvery = Options.Int("--checkpoint-every", "Steps between checkpoints (one is also written at the end)", 500);
        var resume = new Option<bool>("--resume") { Description = "Continue from checkpoint.safetensors in --out" };
        var cmd = new Command("train", "Train a model (mlp, resnet20 on Fashion-MNIST; gpt on a character corpus); write logs, weights, checkpoints, plots");
        foreach (var o in new Option[] { model, optimizer, lr, momentum, weightDecay, schedule, warmup, batch, steps, epochs, evalEvery, evalBatches, augment,
                                         layers, heads, width, context, dropout, activation, data, text, train, output_, checkpointEvery, resume })
            cmd.Options.Add(o);
        common.AddTo(cmd);
        cmd.Validators.Add(r =>
        {
            if (r.GetValue(steps) is null == r.GetValue(epochs) is null) r.AddError("give exactly one of --steps and --epochs.");
            if (r.GetValue(steps) is < 1) r.AddError($"--steps must be at least 1, got {r.GetValue(steps)}.");
            if (r.GetValue(epochs) is < 1) r.AddError($"--epochs must be at least 1, got {r.GetValue(epochs)}.");
            if (r.GetValue(epochs) is not null && r.GetValue(model) == "gpt") r.AddError("--epochs is for mlp and resnet20; give --steps for gpt.");
            if (r.GetValue(lr) is { } l && !(l > 0 && double.IsFinite(l))) r.AddError($"--lr must be a positive number, got {l}.");
            if (r.GetValue(weightDecay) is { } w && !(w >= 0)) r.AddError($"--weight-decay must be at least 0, got {w}.");
            double m = r.GetValue(momentum), d = r.GetValue(dropout);
            if (!(m >= 0 && m < 1)) r.AddError($"--momentum must lie in [0, 1), got {m}.");
            if (!(d >= 0 && d < 1)) r.AddError($"--dropout must lie in [0, 1), got {d}.");
            if (r.GetValue(model) == "gpt" && r.GetValue(width) is int wd and > 0 && wd % r.GetValue(heads) != 0)
                r.AddError($"--width {wd} is not divisible by --heads {r.GetValue(heads)}.");
        });
        cmd.SetAction(r =>
        {
            var device = common.Apply(r, output);
            string m = r.GetValue(model)!, opt = r.GetValue(optimizer)!;
            bool adam = opt is "adam" or "adamw";
            int w = r.GetValue(width);
            var s = new Settings(m, opt,
                r.GetValue(lr) ?? (m == "gpt" ? (adam ? 1e-3 : 0.5) : m == "resnet20" ? (adam ? 1e-3 : 0.1) : (adam ? 1e-3 : 0.05)),
                r.GetValue(momentum),
                r.GetValue(weightDecay) ?? (opt == "adamw" ? 0.1 : m == "resnet20" ? 5e-4 : 0),
                r.GetValue(schedule)!, r.GetValue(warmup),
                r.GetValue(batch) is > 0 and var b ? b : m == "gpt" ? 32 : 128,
                r.GetValue(steps), r.GetValue(epochs), r.GetValue(evalEvery), r.GetValue(evalBatches), r.GetValue(augment),
                new GptConfig(Context: r.GetValue(context), Layers: r.GetValue(layers), Heads: r.GetValue(heads), Width: w > 0 ? w : 128, Dropout: r.GetValue(dropout)),
                w > 0 ? w : 200, r.GetValue(activation)!, r.GetValue(data)!, r.GetValue(text)!, r.GetValue(output_)!, r.GetValue(checkpointEvery),
                r.GetValue(resume), r.GetValue(common.Seed), r.GetValue(train), device);
            var summary = Execute(s, output, string.Join(' ', r.Tokens.Select(t => t.Value)));
            if (r.GetValue(common.Json) is { } path) AtomicFile.WriteAllText(path, summary);
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
        int totalSteps = s.Steps ?? s.Epochs!.Value * task.StepsPerEpoch;
        Directory.CreateDirectory(s.Out);
        var model = task.CreateModel(s.Seed);
        var stream = task.Batches(s.Seed);
        var (optimizer, setLr) = CreateOptimizer(s);
        string checkpointPath = Path.Combine(s.Out, "checkpoint.safetensors"), csvPath = Path.Combine(s.Out, "steps.csv");
        var csv = new CsvLog("step", "loss", "lr", "eval_train_loss", "eval_heldout_loss", "eval_heldout_accuracy", "seconds");
        var rng = new RandomGenerator(s.Seed);
        var noise = s.Model == "gpt" && s.Gpt.Dropout > 0 ? new RandomGenerator(s.Seed, 1UL << 50) : null;
        int first = 0;
        double secondsBefore = 0;
        var evals = new List<(int Step, double HeldOutLoss)>();
        if (s.Resume)
        {
            if (!File.Exists(checkpointPath)) throw new LabException($"--resume: there is no {checkpointPath} to continue from.");
            var meta = Checkpoint.Load(checkpointPath, model, optimizer);
            first = (int)Checkpoint.Integer(meta, "step", checkpointPath);
            if (meta.GetValueOrDefault("model") != s.Model) throw new LabException($"{checkpointPath}: the checkpoint is of model '{meta.GetValueOrDefault("model")}', not '{s.Model}'.");
            if (first > totalSteps) throw new LabException($"{checkpointPath}: the checkpoint is at step {first}, past the {totalSteps} steps asked for.");
            stream.Restore(meta, checkpointPath);
            rng = new RandomGenerator(s.Seed, (ulong)Checkpoint.Integer(meta, "rng_offset", checkpointPath));
            if (noise is not null) noise = new RandomGenerator(s.Seed, (ulong)Checkpoint.Integer(meta, "noise_offset", checkpointPath));
            secondsBefore = double.Parse(meta["seconds"], CultureInfo.InvariantCulture);
            if (!File.Exists(csvPath)) throw new LabException($"--resume: {csvPath} is missing.");
            foreach (var line in File.ReadLines(csvPath).Skip(1).Take(first))
            {
                var f = line.Split(',');
                object? Cell(int i) => f[i].Length == 0 ? null : double.Parse(f[i], CultureInfo.InvariantCulture);
                csv.Add(int.Parse(f[0], CultureInfo.InvariantCulture), Cell(1), Cell(2), Cell(3), Cell(4), Cell(5), Cell(6));
                if (f[4].Length > 0) evals.Add((int.Parse(f[0], CultureInfo.InvariantCulture) + 1, double.Parse(f[4], CultureInfo.InvariantCulture)));
            }
            if (csv.Count != first) throw new LabException($"{csvPath} holds {csv.Count} steps but the checkpoint is at step {first}.");
        }
        output.WriteLine($"train: {task.Describe}; {model.ParameterCount():N0} parameters; {s.Optimizer} η {s.LearningRate:G3} ({s.Schedule}, warm-up {s.Warmup}), " +
                         $"μ {s.Momentum}, λ {s.WeightDecay:G3}, batch {s.Batch}, {totalSteps} steps{(first > 0 ? $", resuming at {first}" : "")}");
        var clock = Stopwatch.StartNew();
        double Seconds() => secondsBefore + clock.Elapsed.TotalSeconds;

        void Save(int step)
        {
            csv.Write(csvPath);
            var meta = new Dictionary<string, string>(stream.Cursor())
            {
                ["model"] = s.Model,
                ["rng_offset"] = rng.Offset.ToString(CultureInfo.InvariantCulture),
                ["seconds"] = Seconds().ToString("R", CultureInfo.InvariantCulture),
                ["command"] = commandLine,
            };
            if (noise is not null) meta["noise_offset"] = noise.Offset.ToString(CultureInfo.InvariantCulture);
            Checkpoint.Save(checkpointPath, model, optimizer, step, meta);
        }

        Evaluation? last = null;
        ProgressDisplay.Run(output, [($"{s.Model}", totalSteps)], tasks =>
        {
            var progress = tasks[0];
            double trailing = double.NaN;
            for (int step = first; step < totalSteps; step++)
            {
                double lrNow = LearningRateAt(s.LearningRate, s.Schedule, s.Warmup, step, totalSteps);
                setLr(lrNow);
                var (x, y) = stream.Next(rng);
                double loss;
                try { loss = Step(model, optimizer, "ce", x, y, step, noise); }
                catch (LabException e) { throw new LabException($"{e.Message}; stopping (the last checkpoint and steps.csv are kept in {s.Out})."); }
                trailing = double.IsNaN(trailing) ? loss : 0.95 * trailing + 0.05 * loss;
                bool evaluate = (step + 1) % s.EvalEvery == 0 || step + 1 == totalSteps;
                object? trainEval = null, heldLoss = null, heldAcc = null;
                if (evaluate)
                {
                    last = task.Evaluate(model);
                    trainEval = last.TrainLoss;
                    heldLoss = last.HeldOutLoss;
                    heldAcc = last.HeldOutAccuracy;
                    evals.Add((step + 1, last.HeldOutLoss));
                }
                csv.Add(step, loss, lrNow, trainEval, heldLoss, heldAcc, Seconds());
                progress.Report(step + 1, $"loss {trailing:0.0000}  η {lrNow:G3}" + (heldLoss is double h ? $"  held-out {h:0.0000}" : "") + (heldAcc is double a ? $" ({a:P1})" : ""));
                if ((step + 1) % s.CheckpointEvery == 0 && step + 1 < totalSteps) Save(step + 1);
            }
        });
        last ??= task.Evaluate(model);
        Save(totalSteps);
        double seconds = Seconds();
        var weightsPath = Path.Combine(s.Out, "model.safetensors");
        Safetensors.Write(weightsPath, model.StateDict(), task.WeightsMetadata(model));
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
            ["final"] = last.ToDictionary(),
            ["command"] = "./lab " + commandLine,
        }, new JsonSerializerOptions { WriteIndented = true });
        AtomicFile.WriteAllText(Path.Combine(s.Out, "summary.json"), summary);
        Plot(s, csv, evals);
        output.WriteLine(string.Join(", ", last.ToDictionary().Select(kv => $"{kv.Key} {kv.Value:0.0000}")) + $"; {seconds:0.0} s; files in {s.Out}");
        return summary;
    }

    private static (IOptimizer Optimizer, Action<double> SetLearningRate) CreateOptimizer(Settings s)
    {
        switch (s.Optimizer)
        {
            case "sgd":
                var sgd = new GradientDescent(s.LearningRate, s.WeightDecay);
                return (sgd, v => sgd.LearningRate = v);
            case "momentum" or "nesterov":
                var m = new Momentum(s.LearningRate, s.Momentum, s.Optimizer == "nesterov", s.WeightDecay);
                return (m, v => m.LearningRate = v);
            default:
                var adam = new Adam(s.LearningRate, beta1: s.Momentum, weightDecay: s.WeightDecay, decoupled: s.Optimizer == "adamw");
                return (adam, v => adam.LearningRate = v);
        }
    }

    private static void Plot(Settings s, CsvLog csv, List<(int Step, double HeldOutLoss)> evals)
    {
        var rows = csv.Rows;
        var xs = rows.Select(r => double.Parse(r[0], CultureInfo.InvariantCulture)).ToArray();
        var losses = rows.Select(r => double.Parse(r[1], CultureInfo.InvariantCulture)).ToArray();
        var plot = new Plot();
        plot.Add.ScatterLine(xs, Compare.TrailingMean(losses, 50)).LegendText = "training loss (minibatch, trailing mean of 50)";
        if (evals.Count > 0)
        {
            var held = plot.Add.ScatterLine(evals.Select(e => (double)e.Step).ToArray(), evals.Select(e => e.HeldOutLoss).ToArray());
            held.LegendText = s.Model == "gpt" ? "validation loss" : "test loss";
            held.MarkerSize = 5;
        }
        plot.XLabel("step"); plot.YLabel("cross-entropy"); plot.ShowLegend(Alignment.UpperRight);
        AtomicFile.WriteAllBytes(Path.Combine(s.Out, "loss.png"), plot.GetImageBytes(900, 550, ImageFormat.Png));
    }
}
