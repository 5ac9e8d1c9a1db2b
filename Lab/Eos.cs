using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Curvature.Training;
using Curvature.Training.Distributed;
using Curvature.Autodiff;
using Curvature.Engine;
using Curvature.Lab.Reporting;
using Curvature.Models;
using Curvature.Models.Data;
using Curvature.Optimizers;
using Curvature.Spectral;
using ScottPlot;

namespace Curvature.Lab;

/// <summary>
/// <c>Lab eos</c>: the Edge of Stability after Cohen et al. 2021, Figure 1. Full-batch gradient descent on the first
/// N Fashion-MNIST training images with the fc-tanh MLP and the MSE loss (or ResNet-20, or a GPT on N character windows), at several learning rates;
/// every k steps the sharpness (the top Hessian eigenvalue) by Lanczos on exact HVPs, warm-started from the
/// previous top eigenvector. The sharpness rises until it reaches 2/η and then hovers there.
/// </summary>
public static class Eos
{
    /// <summary>Settings of an experiment.</summary>
    /// <remarks><paramref name="Optimizer"/>: gd, momentum (heavy ball, μ 0.9) or nesterov (μ 0.9), full batch unless <paramref name="Batch"/>
    /// is positive; sgd always on minibatches of <paramref name="Batch"/>. Minibatch runs' probes add the batch sharpness over
    /// <paramref name="Samples"/> minibatches and the noise along the top eigenvector.</remarks>
    public sealed record Settings(int N, double[] LearningRates, int Steps, int ProbeEvery, int LanczosIterations,
        int Width, string Activation, string Loss, ulong Seed, string Data, string Out, Engine.Device? Device = null,
        string Optimizer = "gd", int Batch = 0, int Samples = 10, bool Flow = false, double FlowAlpha = 1, double FlowMaxStep = 0,
        string Model = "mlp", string Text = "", int Context = 32, int Layers = 2, int Heads = 2, ICommunicator? Ranks = null, bool SyncBatchNorm = false)
    {
        /// <summary>The ranks the runs are spread over (one process unless <c>--distributed</c>): the batch and the probes are sharded, the rest replicated.</summary>
        public ICommunicator Communicator => Ranks ?? SingleProcess.Instance;
        /// <summary>The GPT's configuration (<paramref name="Width"/> is its embedding width; the vocabulary is the corpus's).</summary>
        public GptConfig Gpt(int vocabulary) => new(Vocabulary: vocabulary, Context: Context, Layers: Layers, Heads: Heads, Width: Width);
        /// <summary>Δmax of the flow's step rule at rate <paramref name="lr"/>: <see cref="FlowMaxStep"/>, or η when it is 0.</summary>
        public double FlowMaxStepAt(double lr) => FlowMaxStep > 0 ? FlowMaxStep : lr;
        /// <summary>Whether the steps take minibatches (the stochastic edge).</summary>
        public bool Stochastic => Batch > 0;
        /// <summary>Momentum μ of the momentum and nesterov runs.</summary>
        public const double Mu = 0.9;
        /// <summary>The rule's edge η·λ (<see cref="StabilityEdge"/>): 2 for GD and SGD, 3.8 for heavy ball and 1.357 for Nesterov at μ 0.9.</summary>
        public double Limit => StabilityLimit(Optimizer, Mu);
    }

    /// <summary>The edge η·λ of <paramref name="optimizer"/> (gd, sgd, momentum, nesterov) at momentum <paramref name="mu"/> (<see cref="StabilityEdge"/>).</summary>
    public static double StabilityLimit(string optimizer, double mu) => optimizer switch
    {
        "adam" => StabilityEdge.Adam(mu),
        "momentum" => StabilityEdge.HeavyBall(mu),
        "nesterov" => StabilityEdge.Nesterov(mu),
        _ => StabilityEdge.GradientDescent,
    };

    private static string LimitText(double limit) => limit.ToString("0.###", CultureInfo.InvariantCulture);

    /// <summary>A probe of a stochastic run: the batch sharpness (± standard error) and vᵀΣv along the full-batch top eigenvector.</summary>
    public sealed record Probe(int Step, double BatchSharpness, double StandardError, double NoiseAlongTop, double RatioOfMeans);

    /// <summary>A point of the gradient flow compared with GD at rate η: the flow at time t = η·<paramref name="Step"/>.</summary>
    public sealed record FlowRow(int Step, double Time, double Loss, double Sharpness, double TopProjection, int Gradients);

    /// <summary>The outcome of one learning rate.</summary>
    public sealed record Run(double LearningRate, int Steps, double FinalLoss, double FinalAccuracy, double MaxSharpness,
        double MedianEtaSharpnessSecondHalf, int? DivergedAt, double Seconds, List<(int Step, double Loss, double Accuracy, double? Sharpness)> Rows)
    {
        /// <summary>Stochastic runs: the batch-sharpness probes.</summary>
        public IReadOnlyList<Probe> Probes { get; init; } = [];
        /// <summary>Median η·(batch sharpness) over the second half's probes (NaN for GD).</summary>
        public double MedianEtaBatchSharpnessSecondHalf { get; init; } = double.NaN;
        /// <summary>Adam runs: the preconditioned sharpness λmax(P⁻¹H) at each probe.</summary>
        public IReadOnlyList<(int Step, double Value)> Preconditioned { get; init; } = [];
        /// <summary>Median η·(preconditioned sharpness) over the second half's probes (NaN but for Adam).</summary>
        public double MedianEtaPreconditionedSecondHalf { get; init; } = double.NaN;
        /// <summary>At each probe, ⟨w_t − w₀, v_t⟩: the iterate's displacement along the top eigenvector v_t (sign-aligned from probe to probe).</summary>
        public IReadOnlyList<(int Step, double Value)> TopProjections { get; init; } = [];
        /// <summary>With --flow: the gradient flow from the same start, at the probe steps' times η·step.</summary>
        public IReadOnlyList<FlowRow> Flow { get; init; } = [];
        /// <summary>With --flow: the flow's wall-clock seconds.</summary>
        public double FlowSeconds { get; init; } = double.NaN;
    }

    /// <summary>The MLP's defaults (about ten minutes on two cores) and the --quick ones (about a minute).</summary>
    public static readonly (int N, double[] Lrs, int Steps, int ProbeEvery) Full = (5000, [0.12, 0.15, 0.18], 1500, 50),
                                                                         Quick = (1000, [0.12, 0.14], 600, 20);

    /// <summary>The models eos trains.</summary>
    public static readonly string[] Models = ["mlp", "resnet20", "gpt"];

    /// <summary>Each model's defaults and --quick ones: (N, learning rates, steps, probe every, width).</summary>
    public static ((int N, double[] Lrs, int Steps, int ProbeEvery) Full, (int N, double[] Lrs, int Steps, int ProbeEvery) Quick, int Width) Defaults(string model) => model switch
    {
        // ResNet-20 on N images (training-mode BatchNorm over the full batch; MSE: λmax ≈ 91 at initialization, so
        // η ≤ 0.02 starts stable, η = 0.05 catapults to about 22 and then sharpens, reaching 34 of 2/η = 40 by step 200
        // at N 128, while η = 0.2 diverges) and a 2-layer GPT on N windows of --context characters (cross-entropy,
        // η = 0.2 at N 16: λmax 16–26 against 2/η = 10 over 150 steps). --quick takes about three minutes for
        // ResNet-20 and half a minute for the GPT on two cores; the full defaults are hours.
        "resnet20" => ((500, [0.02, 0.05], 1000, 50), (128, [0.05], 300, 20), 16),
        "gpt" => ((64, [0.05, 0.1], 1000, 50), (16, [0.2], 150, 15), 64),
        _ => (Full, Quick, 200),
    };

    internal static Command Command(TextWriter output0)
    {
        var common = new Cli.CommonOptions();
        var distributed = new DistributedOptions();
        var n = Options.Int("--n", $"Training images used (the first N), or the GPT's windows (default for mlp {Full.N}, --quick {Quick.N}; resnet20 {Defaults("resnet20").Full.N}, {Defaults("resnet20").Quick.N}; gpt {Defaults("gpt").Full.N}, {Defaults("gpt").Quick.N})", 0, min: 0, max: 1_000_000);
        var lrs = Options.PositiveList("--lrs", $"Learning rates, comma-separated (default for mlp {string.Join(",", Full.Lrs)}, resnet20 {string.Join(",", Defaults("resnet20").Full.Lrs)}, gpt {string.Join(",", Defaults("gpt").Full.Lrs)})", []);
        var steps = Options.Int("--steps", $"Steps per learning rate (default {Full.Steps} for mlp, {Defaults("resnet20").Full.Steps} for resnet20 and gpt)", 0, min: 0, max: Options.MaxSteps);
        var probe = Options.Int("--probe-every", $"Steps between sharpness probes (default {Full.ProbeEvery})", 0, min: 0);
        var iters = Options.Int("--lanczos-iters", "Lanczos iterations per probe", 20, max: 100_000);
        var model = Options.OneOf("--model", "mlp (Cohen et al.'s fc-tanh, flattened images), resnet20 (the images as [N, 1, 28, 28], training-mode BatchNorm) or gpt (N windows of --context characters of --text, next-character targets)", "mlp", Models);
        var width = Options.Int("--width", "Hidden width of the MLP (default 200), the GPT's embedding width (default 64) or ResNet-20's first-stage channels (default 16)", 0, min: 0, max: 65536);
        var text = new Option<string>("--text") { Description = "gpt: the character corpus", DefaultValueFactory = _ => Lab.Train.DefaultTextPath() };
        var context = Options.Int("--context", "gpt: characters per window (the model's context T)", 32, max: 65536);
        var layers = Options.Int("--layers", "gpt: Transformer blocks", 2, max: 1024);
        var heads = Options.Int("--heads", "gpt: attention heads (dividing the width)", 2, max: 1024);
        var act = Options.OneOf("--activation", "tanh or relu", "tanh", "tanh", "relu");
        var loss = new Option<string?>("--loss") { Description = "mse (Cohen et al.'s, whose sharpness settles at the edge rather than falling with the loss as cross-entropy's does late in training; the default for every model) or ce" };
        loss.AcceptOnlyFromAmong(Loss.Names);
        var optimizer = Options.OneOf("--optimizer", "gd: gradient descent (Cohen et al. 2021), edge 2/η; momentum: heavy ball (μ 0.9), edge (2 + 2μ)/η; nesterov (μ 0.9), edge (2 + 2μ)/((1 + 2μ)η); "
            + "full batch unless --batch is given. adam (β₁ 0.9, β₂ 0.999, full batch): the preconditioned sharpness λmax(P⁻¹H) against (2 + 2β₁)/((1 − β₁)η) = 38/η (Cohen et al. 2022). "
            + "sgd: minibatches of --batch (default 32). Minibatch probes add the batch sharpness and the noise along the top eigenvector (Andreyev and Beneventano 2024)",
            "gd", "gd", "sgd", "momentum", "nesterov", "adam");
        var batch = Options.Int("--batch", "Minibatch size b (sgd: default 32; gd, momentum, nesterov: the full batch unless given)", 0, min: 0, max: 1_000_000);
        var samples = Options.Int("--samples", "Minibatches per batch-sharpness probe", 10, max: 10_000);
        var flow = new Option<bool>("--flow") { Description = "GD only: also run the gradient flow dw/dt = −∇L from the same start (RK4, step min(α/λmax, Δmax), Cohen et al. 2021) to time η·steps, sampled at the probe steps' times η·step (flow.csv)" };
        var flowAlpha = Options.Number("--flow-alpha", "α of the flow's step rule min(α/λmax, Δmax) (RK4 is stable to α 2.78)", 1.0, min: 0, max: 2.78, minExclusive: true);
        var flowMaxStep = Options.OptionalPositive("--flow-max-step", "Δmax of the flow's step rule (default: η, no coarser than the GD it is compared with)");
        var quick = new Option<bool>("--quick") { Description = "A one-minute version: fewer images and steps, learning rates that reach the edge fast" };
        var data = Options.FashionMnistFolder();
        var outDir = new Option<string>("--out") { Description = "Output folder for steps.csv, summary.json and eos.png", DefaultValueFactory = _ => "out/eos" };

        var cmd = new Command("eos", "GD (or heavy-ball or Nesterov momentum, or Adam; full batch, or minibatches) on the MLP, ResNet-20 or a GPT at several learning rates, with the sharpness against the rule's edge (2/η for GD, Cohen et al. 2021)");
        foreach (var o in new Option[] { model, n, lrs, steps, probe, iters, width, text, context, layers, heads, act, loss, optimizer, batch, samples, flow, flowAlpha, flowMaxStep, quick, data, outDir }) cmd.Options.Add(o);
        common.AddTo(cmd);
        distributed.AddTo(cmd);
        cmd.SetAction(r =>
        {
            var output = output0;
            var (device, ranks) = distributed.Start(r, common, ref output);
            string kind = r.GetValue(model)!;
            var defaults = Defaults(kind);
            var preset = r.GetValue(quick) ? defaults.Quick : defaults.Full;
            int Pick(int v, int fallback) => v > 0 ? v : fallback;
            var s = new Settings(Pick(r.GetValue(n), preset.N), r.GetValue(lrs) is { Length: > 0 } l ? l : preset.Lrs,
                Pick(r.GetValue(steps), preset.Steps), Pick(r.GetValue(probe), preset.ProbeEvery), r.GetValue(iters),
                Pick(r.GetValue(width), defaults.Width), r.GetValue(act)!, r.GetValue(loss) ?? "mse", r.GetValue(common.Seed), r.GetValue(data)!, r.GetValue(outDir)!, device,
                r.GetValue(optimizer)!, r.GetValue(batch) is > 0 and var b ? b : r.GetValue(optimizer) == "sgd" ? 32 : 0, r.GetValue(samples),
                r.GetValue(flow), r.GetValue(flowAlpha), r.GetValue(flowMaxStep) ?? 0, kind, r.GetValue(text)!, r.GetValue(context), r.GetValue(layers), r.GetValue(heads), ranks, distributed.Sync(r));
            if (kind == "gpt" && s.Width % s.Heads != 0) throw new UsageException($"--heads {s.Heads} does not divide the GPT's width {s.Width} (--width).");
            if (s.Flow && (s.Optimizer != "gd" || s.Stochastic))
                throw new UsageException($"--flow is the limit of full-batch gradient descent and is compared with it: it needs --optimizer gd without --batch (got --optimizer {s.Optimizer}{(s.Stochastic ? $" --batch {s.Batch}" : "")}).");
            if (s.Stochastic && s.Batch > s.N) throw new UsageException($"--batch {s.Batch} is larger than the {s.N} training images (--n).");
            var runs = Execute(s, output);
            if (r.GetValue(common.Json) is { } path && ranks.Rank == 0) AtomicFile.WriteAllText(path, SummaryJson(s, runs));
            return 0;
        });
        return cmd;
    }

    /// <summary>Runs every learning rate and writes steps.csv, summary.json and eos.png into the output folder.</summary>
    public static IReadOnlyList<Run> Execute(Settings s, TextWriter output)
    {
        var (inputs, labels, vocabulary, describe) = Load(s);
        // Locked for the run; a rerun replaces the folder's results (eos keeps no checkpoints to resume).
        bool root = s.Communicator.Rank == 0;
        using var folder = RunFolder.Open(s.Communicator, s.Out, checkExisting: false);
        var device = s.Device ?? Engine.CpuDevice.Instance;
        var x = inputs.To(device);
        var labelsOnDevice = labels.To(device);
        output.WriteLine($"eos: {describe}, loss {s.Loss}, N = {s.N}, learning rates {string.Join(", ", s.LearningRates)}, {s.Steps} steps, sharpness every {s.ProbeEvery} steps (Lanczos, {s.LanczosIterations} iterations)");

        var runs = new List<Run>();
        string[] extra = s.Stochastic ? ["batch_sharpness", "batch_sharpness_stderr", "noise_along_top", "batch_sharpness_ratio_of_means"]
                       : s.Optimizer == "adam" ? ["preconditioned_sharpness"] : [];
        var csv = new CsvLog(["step", "loss", "accuracy", "sharpness", "lr", "top_projection", .. extra]);
        var flowCsv = new CsvLog("lr", "step", "time", "loss", "sharpness", "top_projection", "gradients");
        var tasks = s.LearningRates.SelectMany(lr => s.Flow ? new[] { ($"η = {lr}", s.Steps), ($"flow, η = {lr}", s.Steps / s.ProbeEvery) } : [($"η = {lr}", s.Steps)]).ToArray();
        ProgressDisplay.Run(output, tasks, bars =>
        {
            for (int i = 0; i < s.LearningRates.Length; i++)
            {
                double lr = s.LearningRates[i];
                var run = Train(s, lr, x, labelsOnDevice, vocabulary, bars[s.Flow ? 2 * i : i]);
                if (s.Flow) run = run with { Flow = Flow(s, lr, x, labelsOnDevice, vocabulary, bars[2 * i + 1], out double seconds), FlowSeconds = seconds };
                runs.Add(run);
                var byStep = run.Probes.ToDictionary(p => p.Step);
                var projection = run.TopProjections.ToDictionary(p => p.Step, p => p.Value);
                var preconditioned = run.Preconditioned.ToDictionary(p => p.Step, p => p.Value);
                foreach (var row in run.Rows)
                {
                    object?[] kind = s.Stochastic ? byStep.TryGetValue(row.Step, out var p) ? [p.BatchSharpness, p.StandardError, p.NoiseAlongTop, p.RatioOfMeans] : [null, null, null, null]
                                   : s.Optimizer == "adam" ? [preconditioned.TryGetValue(row.Step, out double pc) ? pc : null] : [];
                    csv.Add([row.Step, row.Loss, row.Accuracy, row.Sharpness, run.LearningRate, projection.TryGetValue(row.Step, out double tp) ? tp : null, .. kind]);
                }
                foreach (var f in run.Flow) flowCsv.Add(lr, f.Step, f.Time, f.Loss, f.Sharpness, f.TopProjection, f.Gradients);
                if (!root) continue;
                csv.Write(Path.Combine(s.Out, "steps.csv"));
                if (s.Flow) flowCsv.Write(Path.Combine(s.Out, "flow.csv"));
                AtomicFile.WriteAllText(Path.Combine(s.Out, "summary.json"), SummaryJson(s, runs));
            }
        });
        if (!root) return runs;
        Plot(runs, Path.Combine(s.Out, "eos.png"), s);
        Print(output, runs, s.Out, s);
        return runs;
    }

    /// <summary>
    /// The full batch: the first N training images (flattened for the MLP, [N, 1, 28, 28] for ResNet-20), or N
    /// windows of --context characters from the corpus's training split at fixed offsets (the probe batch's stream), with the
    /// vocabulary size (0 for images) and one line describing the model.
    /// </summary>
    private static (NdArray Inputs, NdArray Labels, int Vocabulary, string Describe) Load(Settings s)
    {
        if (s.Model == "gpt")
        {
            if (Directory.Exists(s.Text)) throw new LabException($"--text {s.Text} is a folder; expected the corpus file.");
            if (!File.Exists(s.Text)) throw new LabException($"--text {s.Text}: no such file (the GPT trains on a character corpus such as tinyshakespeare.txt).");
            var corpus = CharCorpus.Load(s.Text);
            if (corpus.Train.Length <= s.Context) throw new LabException($"--text {s.Text}: its training split has {corpus.Train.Length} characters, too few for one window of --context {s.Context}.");
            var (wx, wy) = corpus.Batch(s.N, s.Context, new RandomGenerator(54321));
            var g = s.Gpt(corpus.Vocabulary.Count);
            try { g.Validate(); }
            catch (ArgumentException e) { throw new UsageException($"the GPT's settings: {e.Message}"); }
            return (wx, wy, corpus.Vocabulary.Count, $"GPT {g.Layers} layers, {g.Heads} heads, width {g.Width}, context {g.Context}, on {Path.GetFileName(s.Text)} ({corpus.Vocabulary.Count} characters)");
        }
        var (train, _) = FashionMnist.Load(s.Data);
        if (s.N > train.Count) throw new LabException($"--n {s.N} is more than the {train.Count} training images.");
        var subset = train.Take(s.N);
        return s.Model == "resnet20"
            ? (subset.Inputs.Reshape(s.N, 1, 28, 28), subset.Labels, 0, $"ResNet-20 (width {s.Width}, training-mode BatchNorm over the full batch) on Fashion-MNIST")
            : (subset.Inputs.Reshape(s.N, -1), subset.Labels, 0, $"MLP {s.Activation} width {s.Width} on Fashion-MNIST");
    }

    private static Module NewModel(Settings s, int vocabulary, Engine.Device device)
    {
        var rng = new RandomGenerator(s.Seed);
        Module m = s.Model switch
        {
            "resnet20" => new ResNet(rng, 1, 10, s.Width, 3),
            "gpt" => new Gpt(s.Gpt(vocabulary), rng),
            _ => Mlp.Create(rng, s.Width, s.Activation),
        };
        return m.To(device);
    }

    /// <summary>
    /// Sign-aligns each top eigenvector with the one before (an eigenvector's sign is arbitrary) and gives the
    /// iterate's displacement along it, ⟨w − w₀, v⟩.
    /// </summary>
    private sealed class TopProjection(NdArray w0)
    {
        private NdArray? previous;
        public double Of(NdArray w, NdArray v)
        {
            if (previous is not null && v.Dot(previous) < 0) v = -v;
            previous = v;
            return (w - w0).Dot(v);
        }
    }

    /// <summary>The gradient flow from GD's start, sampled at the probe steps' times η·step.</summary>
    private static List<FlowRow> Flow(Settings s, double lr, NdArray x, NdArray y, int vocabulary, IProgressTask progress, out double seconds)
    {
        var clock = Stopwatch.StartNew();
        var model = NewModel(s, vocabulary, x.Device);
        var w0 = Vectors.Flatten(ParameterVector.Of(model));
        var projection = new TopProjection(w0);
        var flow = GradientFlow.Of(model, s.Loss, x, y, s.FlowMaxStepAt(lr), s.FlowAlpha, s.LanczosIterations, s.Seed, s.Communicator, s.SyncBatchNorm);
        var rows = new List<FlowRow>();
        foreach (var p in flow.Run(w0, lr * s.ProbeEvery, s.Steps / s.ProbeEvery))
        {
            int step = (int)Math.Round(p.Time / lr);
            rows.Add(new FlowRow(step, p.Time, p.Loss, p.Sharpness, projection.Of(p.Weights, p.TopEigenvector), p.Gradients));
            progress.Report(rows.Count - 1, $"t = {p.Time:0.##}  loss {p.Loss:0.0000}  sharpness {p.Sharpness:0.0}  {p.Gradients} gradients");
        }
        seconds = clock.Elapsed.TotalSeconds;
        progress.Report(s.Steps / s.ProbeEvery, $"done at t = {rows[^1].Time:0.##}, loss {rows[^1].Loss:0.0000}, {rows[^1].Gradients} gradients");
        return rows;
    }

    private static Run Train(Settings s, double lr, NdArray x, NdArray y, int vocabulary, IProgressTask progress)
    {
        var model = NewModel(s, vocabulary, x.Device);
        var projection = new TopProjection(Vectors.Flatten(ParameterVector.Of(model)));
        var projections = new List<(int Step, double Value)>();
        // Full-batch GD through the one training loop: the loss, accuracy and sharpness of step t are measured at
        // w_t before its update; one step more than --steps gives the measurements at w_steps (its update is unused).
        var shapes = model.Parameters().Select(p => p.Shape).ToArray();
        int probeCount = 0;
        // Stochastic runs: after every T-th step, at the weights the next step's λmax probe sees, the batch sharpness
        // over minibatches of b; that probe then gives vᵀΣv along the top eigenvector it found (one JVP more, instead of
        // a second Lanczos run at the same weights).
        var noiseAlongTop = new Dictionary<int, double>();
        var evaluator = !s.Stochastic ? null : new Evaluator(["batch_sharpness", "batch_sharpness_stderr", "batch_sharpness_ratio_of_means"], m =>
        {
            var both = new GradientNoise(m, s.Loss, x, y, training: true).BatchSharpnessBoth(s.Batch, s.Samples, new RandomGenerator(s.Seed + 7, (ulong)probeCount++ << 40));
            return [both.MeanOfRatios.Value, both.MeanOfRatios.StandardError, both.RatioOfMeans.Value];
        }, AtLastStep: false);
        IOptimizer optimizer = s.Optimizer switch
        {
            "momentum" or "nesterov" => new Momentum(lr, Settings.Mu, nesterov: s.Optimizer == "nesterov"),
            "adam" => new Adam(lr, beta1: Settings.Mu),
            _ => new GradientDescent(lr),
        };
        if (optimizer is Adam adam && !s.Stochastic)
            // λmax(P⁻¹H) with P = (1 − β₁ᵗ)(√v̂ + ε), Adam's step written as w' = w − ηP⁻¹m (Cohen et al. 2022), at the state
            // the next step will use; NaN before the first step (v = 0).
            evaluator = new Evaluator(["preconditioned_sharpness"], m =>
            {
                if (adam.StepsTaken == 0) return [double.NaN];
                var ps = m.Parameters();
                double correction = 1 - Math.Pow(adam.Beta1, adam.StepsTaken + 1);
                var d = Vectors.Flatten(ps.Select((p, i) => (adam.Preconditioner(i, ps.Count, p.Data) * correction).Apply(Curvature.Kernels.UnaryOp.Sqrt).Apply(Curvature.Kernels.UnaryOp.Reciprocal)).ToArray());
                var h = new HessianOperator(Loss.Function(m, s.Loss, x, y, training: true), ParameterVector.Of(m));
                return [Lanczos.Run(new PreconditionedOperator(h, d), s.LanczosIterations, k: 1, rng: new RandomGenerator(s.Seed + 5)).Values[0]];
            }, AtLastStep: false);
        IBatchStream batches = s.Stochastic ? new MinibatchStream(new Models.Data.Dataset(x, y), s.Batch, s.Seed) : new FullBatchStream(x, y);
        var result = new Trainer
        {
            Model = model, Optimizer = optimizer, Batches = batches, Steps = s.Steps + 1, Seed = s.Seed, Loss = s.Loss, Communicator = s.Communicator, SyncBatchNorm = s.SyncBatchNorm,
            Evaluator = evaluator, EvalEvery = s.ProbeEvery,
            Probe = new ProbeSettings(x, y, TrainingMode: true, AuditEvery: 0), SharpnessEvery = s.ProbeEvery, SharpnessIterations = s.LanczosIterations,
            OnSharpness = (step, _, v) =>
            {
                projections.Add((step, projection.Of(Vectors.Flatten(ParameterVector.Of(model)), v)));
                if (s.Stochastic && step > 0)
                    noiseAlongTop[step] = new GradientNoise(model, s.Loss, x, y, training: true).VarianceAlong(Vectors.Unflatten(Vectors.Normalize(v), shapes));
            },
            RecordAccuracy = true, StopWhenDiverged = true,
            OnStep = r => progress.Report(r.Step, $"loss {r.Loss:0.0000}" + (r.Log.Sharpness is { } sh ? $"  sharpness {sh:0.0} ({LimitText(s.Limit)}/η = {s.Limit / lr:0.0})" : "")),
        }.Run();
        int? diverged = result.DivergedAt;
        var rows = Enumerable.Range(0, diverged ?? result.StepsRun).Select(t => (t, result.Losses[t], result.Accuracy[t], result.Sharpness[t])).ToList();
        double lastLoss = rows.Count > 0 ? rows[^1].Item2 : double.NaN, lastAcc = rows.Count > 0 ? rows[^1].Item3 : double.NaN;
        progress.Report(s.Steps, diverged is null ? $"done, loss {lastLoss:0.0000}" : $"diverged at step {diverged}");
        var probes = rows.Where(r => r.Item4 is not null).Select(r => (r.Item1, r.Item4!.Value)).ToArray();
        double median = EtaMedianSecondHalf(probes, s.Steps, lr);
        var batchProbes = !s.Stochastic ? [] : result.Evaluations.Where(e => e.Step < rows.Count).Select(e => new Probe(e.Step, e.Values[0], e.Values[1], noiseAlongTop.GetValueOrDefault(e.Step, double.NaN), e.Values[2])).ToList();
        var preconditioned = s.Stochastic || s.Optimizer != "adam" ? [] : result.Evaluations.Where(e => e.Step < rows.Count && double.IsFinite(e.Values[0])).Select(e => (e.Step, e.Values[0])).ToList();
        double precMedian = EtaMedianSecondHalf(preconditioned, s.Steps, lr);
        double batchMedian = EtaMedianSecondHalf(batchProbes.Select(p => (p.Step, p.BatchSharpness)), s.Steps, lr);
        return new Run(lr, rows.Count - 1, lastLoss, lastAcc, probes.Length == 0 ? double.NaN : probes.Max(p => p.Item2), median, diverged,
            result.Seconds, rows) { Probes = batchProbes, MedianEtaBatchSharpnessSecondHalf = batchMedian, Preconditioned = preconditioned, MedianEtaPreconditionedSecondHalf = precMedian,
            TopProjections = projections.Where(p => p.Step < rows.Count).ToList() };
    }


    /// <summary>The median of η·value over the probes of the second half (steps ≥ steps/2); NaN when there are none.</summary>
    private static double EtaMedianSecondHalf(IEnumerable<(int Step, double Value)> probes, int steps, double lr)
    {
        var half = probes.Where(p => p.Step >= steps / 2).Select(p => lr * p.Value).ToArray();
        return half.Length == 0 ? double.NaN : Timing.Median(half);
    }

    private static string F(double v, string format = "0.000") => double.IsNaN(v) ? "—" : v.ToString(format, CultureInfo.InvariantCulture);

    private static void Print(TextWriter o, IReadOnlyList<Run> runs, string outDir, Settings? s = null)
    {
        o.WriteLine();
        double limit = s?.Limit ?? 2;
        string edge = $"{LimitText(limit)}/η";
        // The intro and the columns that differ by kind of run; η, the edge, the final loss and the seconds are shared.
        var (intro, columns, cells) = s switch
        {
            { Stochastic: true } => ($"{s.Optimizer}, minibatch {s.Batch}: λmax of the full-batch loss against the batch sharpness (mean over {s.Samples} minibatches per probe); the edge is {edge}",
                new[] { "max λmax", "median η·λmax (2nd half)", "median η·batch sharpness (2nd half)" },
                (Func<Run, string[]>)(r => [F(r.MaxSharpness, "0.0"), F(r.MedianEtaSharpnessSecondHalf), F(r.MedianEtaBatchSharpnessSecondHalf)])),
            { Optimizer: "adam" } => ($"adam (β₁ {Settings.Mu}), full batch: the preconditioned sharpness λmax(P⁻¹H) against its edge {edge}; the raw λmax beside it",
                ["final accuracy", "max λmax", "median η·λmax(P⁻¹H) (2nd half)"],
                r => [F(r.FinalAccuracy), F(r.MaxSharpness, "0.0"), F(r.MedianEtaPreconditionedSecondHalf)]),
            _ => (s is not null && s.Optimizer != "gd" ? $"{s.Optimizer} (μ {Settings.Mu}), full batch: the edge is {edge}" : null,
                ["final accuracy", "max sharpness", "median η·sharpness (2nd half)"],
                r => [F(r.FinalAccuracy), F(r.MaxSharpness, "0.0"), F(r.MedianEtaSharpnessSecondHalf)]),
        };
        if (intro is not null)
        {
            o.WriteLine(intro);
            o.WriteLine();
        }
        o.WriteLine($"| η | {edge} | final loss | {string.Join(" | ", columns)} | seconds |");
        o.WriteLine($"|{string.Concat(Enumerable.Repeat("---|", columns.Length + 4))}");
        foreach (var r in runs)
            o.WriteLine($"| {r.LearningRate} | {F(limit / r.LearningRate, "0.0")} | {F(r.FinalLoss, "0.0000")} | {string.Join(" | ", cells(r))}"
                + $"{(r.DivergedAt is { } d ? $" (diverged at step {d})" : "")} | {F(r.Seconds, "0")} |");
        o.WriteLine();
        if (runs.Any(r => r.Flow.Count > 0))
        {
            o.WriteLine($"gradient flow from the same start (RK4, step min({F(s!.FlowAlpha, "0.###")}/λmax, Δmax), Δmax {(s.FlowMaxStep > 0 ? F(s.FlowMaxStep, "0.####") : "η")}), to GD's time η·steps:");
            o.WriteLine();
            o.WriteLine("| η | time | flow's final loss | GD's final loss | flow's max sharpness | GD's max sharpness | gradients | seconds |");
            o.WriteLine("|---|---|---|---|---|---|---|---|");
            foreach (var r in runs.Where(r => r.Flow.Count > 0))
                o.WriteLine($"| {r.LearningRate} | {F(r.Flow[^1].Time, "0.##")} | {F(r.Flow[^1].Loss, "0.0000")} | {F(r.FinalLoss, "0.0000")} | {F(r.Flow.Max(f => f.Sharpness), "0.0")} | {F(r.MaxSharpness, "0.0")} | {r.Flow[^1].Gradients} | {F(r.FlowSeconds, "0")} |");
            o.WriteLine();
        }
        o.WriteLine($"wrote {Path.Combine(outDir, "steps.csv")}, {(runs.Any(r => r.Flow.Count > 0) ? Path.Combine(outDir, "flow.csv") + ", " : "")}{Path.Combine(outDir, "summary.json")}, {Path.Combine(outDir, "eos.png")}");
    }

    /// <summary>The summary document.</summary>
    public static string SummaryJson(Settings s, IReadOnlyList<Run> runs) => JsonSerializer.Serialize(new
    {
        experiment = "eos",
        model = s.Model,
        activation = s.Model == "mlp" ? s.Activation : null,
        width = s.Width,
        gpt = s.Model == "gpt" ? new { context = s.Context, layers = s.Layers, heads = s.Heads, text = Path.GetFileName(s.Text) } : null,
        loss = s.Loss,
        n = s.N,
        steps = s.Steps,
        probe_every = s.ProbeEvery,
        optimizer = s.Optimizer,
        batch = s.Stochastic ? s.Batch : s.N,
        edge = s.Limit,
        lanczos_iterations = s.LanczosIterations,
        seed = s.Seed,
        flow = s.Flow ? new { alpha = s.FlowAlpha, max_step = s.FlowMaxStep > 0 ? (double?)s.FlowMaxStep : null, max_step_rule = s.FlowMaxStep > 0 ? "fixed" : "lr" } : null,
        runs = runs.Select(r => new
        {
            lr = r.LearningRate,
            two_over_lr = 2 / r.LearningRate,
            steps_run = r.Steps,
            final_loss = Finite(r.FinalLoss),
            final_accuracy = Finite(r.FinalAccuracy),
            max_sharpness = Finite(r.MaxSharpness),
            median_lr_times_sharpness_second_half = Finite(r.MedianEtaSharpnessSecondHalf),
            median_lr_times_batch_sharpness_second_half = Finite(r.MedianEtaBatchSharpnessSecondHalf),
            median_lr_times_preconditioned_sharpness_second_half = Finite(r.MedianEtaPreconditionedSecondHalf),
            diverged_at = r.DivergedAt,
            seconds = r.Seconds,
            flow = r.Flow.Count == 0 ? null : new
            {
                time = r.Flow[^1].Time,
                final_loss = Finite(r.Flow[^1].Loss),
                max_sharpness = Finite(r.Flow.Max(f => f.Sharpness)),
                final_sharpness = Finite(r.Flow[^1].Sharpness),
                gradients = r.Flow[^1].Gradients,
                seconds = r.FlowSeconds,
            },
        }),
    }, new JsonSerializerOptions { WriteIndented = true });

    private static double? Finite(double v) => double.IsFinite(v) ? v : null;

    /// <summary>Training loss (top row) and sharpness with the 2/η line (bottom row), a column per learning rate.</summary>
    public static void Plot(IReadOnlyList<Run> runs, string path, Settings? s = null)
    {
        double limit = s?.Limit ?? 2;
        var mp = new Multiplot();
        mp.AddPlots(2 * runs.Count);
        mp.Layout = new ScottPlot.MultiplotLayouts.Grid(2, runs.Count);
        for (int i = 0; i < runs.Count; i++)
        {
            var r = runs[i];
            var lossPlot = mp.GetPlot(i);
            // A log axis: the late phase (losses of 1e-3 to 1e-13 on a memorized batch) and the gap between GD and the flow stay visible.
            var gdLoss = lossPlot.Add.ScatterLine(r.Rows.Select(x => (double)x.Step).ToArray(), r.Rows.Select(x => LogAxis.Of(x.Loss)).ToArray());
            if (r.Flow.Count > 0)
            {
                gdLoss.LegendText = "GD";
                var fl = lossPlot.Add.ScatterLine(r.Flow.Select(f => (double)f.Step).ToArray(), r.Flow.Select(f => LogAxis.Of(f.Loss)).ToArray());
                fl.LegendText = "gradient flow (t = η·step)";
                fl.LinePattern = LinePattern.Dotted;
                fl.MarkerSize = 3;
                lossPlot.ShowLegend(Edge.Bottom);
            }
            lossPlot.Title($"η = {r.LearningRate}");
            lossPlot.YLabel("training loss (log scale)");
            LogAxis.Label(lossPlot);
            lossPlot.XLabel("step");

            var sharpPlot = mp.GetPlot(runs.Count + i);
            var probes = r.Rows.Where(x => x.Sharpness is not null).ToArray();
            if (probes.Length > 0)
            {
                var sc = sharpPlot.Add.ScatterLine(probes.Select(x => (double)x.Step).ToArray(), probes.Select(x => x.Sharpness!.Value).ToArray());
                sc.LegendText = "sharpness (λmax)";
                sc.MarkerSize = 3;
            }
            if (r.Probes.Count > 0)
            {
                var bs = sharpPlot.Add.ScatterLine(r.Probes.Select(p => (double)p.Step).ToArray(), r.Probes.Select(p => p.BatchSharpness).ToArray());
                bs.LegendText = $"batch sharpness (b = {s!.Batch})";
                bs.MarkerSize = 3;
                bs.LinePattern = LinePattern.Dotted;
            }
            if (r.Preconditioned.Count > 0)
            {
                var pc = sharpPlot.Add.Scatter(r.Preconditioned.Select(p => (double)p.Step).ToArray(), r.Preconditioned.Select(p => p.Value).ToArray());
                pc.LegendText = "λmax(P⁻¹H), preconditioned";
                pc.MarkerSize = 3;
            }
            if (r.Flow.Count > 0)
            {
                var fs = sharpPlot.Add.ScatterLine(r.Flow.Select(f => (double)f.Step).ToArray(), r.Flow.Select(f => f.Sharpness).ToArray());
                fs.LegendText = "gradient flow's sharpness";
                fs.LinePattern = LinePattern.Dotted;
                fs.MarkerSize = 3;
            }
            var edge = sharpPlot.Add.HorizontalLine(limit / r.LearningRate);
            edge.LinePattern = LinePattern.Dashed;
            edge.LegendText = $"{limit.ToString("0.##", CultureInfo.InvariantCulture)}/η";
            double top = Math.Max(Math.Max(r.MaxSharpness, r.Probes.Select(p => p.BatchSharpness).Where(double.IsFinite).DefaultIfEmpty(0).Max()),
                Math.Max(r.Preconditioned.Select(p => p.Value).Where(double.IsFinite).DefaultIfEmpty(0).Max(), r.Flow.Select(f => f.Sharpness).Where(double.IsFinite).DefaultIfEmpty(0).Max()));
            sharpPlot.Axes.SetLimitsY(0, Math.Max(1.2 * limit / r.LearningRate, (double.IsFinite(top) ? top : 0) * 1.1));
            sharpPlot.YLabel("sharpness");
            sharpPlot.XLabel("step");
            sharpPlot.ShowLegend(Edge.Bottom);                   // beside the data, never over the curves
        }
        var image = mp.Render(420 * runs.Count, 640);
        AtomicFile.WriteAllBytes(path, image.GetImageBytes(ImageFormat.Png));
    }
}
