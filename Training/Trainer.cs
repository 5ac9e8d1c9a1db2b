using System.Diagnostics;
using System.Globalization;
using Curvature.Autodiff;
using Curvature.Engine;
using Curvature.Models;
using Curvature.Optimizers;
using Curvature.Spectral;
using Curvature.Training.Distributed;

namespace Curvature.Training;

/// <summary>A failure meant for the user (a file that does not fit, a setting out of range): one message, no stack trace.</summary>
public sealed class TrainingException(string message) : Exception(message);

/// <summary>
/// Where curvature probes look: a fixed batch and the mode of the loss whose Hessian they take. Training mode
/// (the default) is the function the optimizer descends: BatchNorm normalizes by the batch's own statistics, and
/// the exact HVP differentiates through them; evaluation mode uses the running statistics, a different function
/// (ResNet-20's λ1 at initialization is about 9× larger in training mode). Probes never update running statistics
/// and never draw dropout.
/// </summary>
/// <param name="Inputs">The probe batch's inputs, on the model's device.</param>
/// <param name="Targets">Its targets.</param>
/// <param name="TrainingMode">True: training-mode loss; false: evaluation mode.</param>
/// <param name="AuditEvery">Probes between audits against a converged Lanczos λmax (0: never).</param>
public sealed record ProbeSettings(NdArray Inputs, NdArray Targets, bool TrainingMode = true, int AuditEvery = 10)
{
    /// <summary>"train" or "eval", as files and reports write it.</summary>
    public string ModeName => TrainingMode ? "train" : "eval";
}

/// <summary>A held-out evaluation run every E steps: the CSV columns it fills and the function that fills them.</summary>
/// <param name="Columns">Column names (e.g. <c>val_loss</c>).</param>
/// <param name="Evaluate">The values, one per column, for the model as it stands.</param>
/// <param name="AtLastStep">Whether the run's last step is evaluated too when it is not a multiple of E (false where
/// the last step only measures, as in the Edge-of-Stability runs, whose extra step's update is unused).</param>
public sealed record Evaluator(string[] Columns, Func<Module, double[]> Evaluate, bool AtLastStep = true);

/// <summary>What one step did, for progress displays.</summary>
/// <param name="Step">The step index (from 0).</param>
/// <param name="Loss">The minibatch loss before the update.</param>
/// <param name="Log">The optimizer's hyperparameters on that step.</param>
/// <param name="Evaluation">The evaluation made after it, or null.</param>
public sealed record StepRecord(int Step, double Loss, StepLog Log, double[]? Evaluation);

/// <summary>What a run did: its log and the series reports are made from.</summary>
/// <param name="Log">The per-step table as written to <c>steps.csv</c>.</param>
/// <param name="Losses">Minibatch loss at each step.</param>
/// <param name="LearningRates">η at each step.</param>
/// <param name="Sharpness">The optimizer's curvature estimate where it probed.</param>
/// <param name="AuditSharpness">The converged Lanczos λmax where a probe was audited.</param>
/// <param name="Evaluations">(steps done, values) of each evaluation, in the evaluator's column order.</param>
/// <param name="Seconds">Wall-clock of the run, audits excluded (they are instrumentation, not the method's cost).</param>
/// <param name="ProbeSeconds">Time in the optimizer's curvature probes.</param>
/// <param name="AuditSeconds">Time in audits and in the trainer's own sharpness measurements (instrumentation, outside <paramref name="Seconds"/>).</param>
/// <param name="TrainFlops">Floating-point operations of the training forward and backward passes.</param>
/// <param name="ProbeFlops">Those of the curvature probes.</param>
/// <param name="Accuracy">Minibatch accuracy at each step, from the training forward (NaN unless <see cref="Trainer.RecordAccuracy"/>).</param>
/// <param name="DivergedAt">The step whose loss was not finite, when <see cref="Trainer.StopWhenDiverged"/> ended the run there; else null.</param>
public sealed record TrainingResult(CsvLog Log, double[] Losses, double[] LearningRates, double?[] Sharpness, double?[] AuditSharpness,
    IReadOnlyList<(int Step, double[] Values)> Evaluations, double Seconds, double ProbeSeconds, double AuditSeconds, double TrainFlops, double ProbeFlops,
    double[] Accuracy, int? DivergedAt)
{
    /// <summary>Steps whose loss was computed (all of them, or up to and including the divergent one).</summary>
    public int StepsRun => DivergedAt is { } d ? d + 1 : Losses.Length;
}

/// <summary>
/// The one training loop every verb and benchmark uses: a stream of minibatches, the training-mode gradient, the
/// optimizer's step (with curvature probes of the training objective on a fixed batch when asked), an optional
/// learning-rate schedule, an evaluation every E steps, a CSV row per step, and checkpoints that resume exactly:
/// weights, optimizer state, the random streams, the data cursor, the clocks and the run's identity, written
/// atomically every C steps and at the end. Resuming checks the identity (the settings that make the run what it
/// is) and the log against the checkpoint, so a changed setting or a stitched log is refused, naming it.
/// </summary>
public sealed class Trainer
{
    /// <summary>The model (on its device).</summary>
    public required Module Model { get; init; }
    /// <summary>The update rule.</summary>
    public required IOptimizer Optimizer { get; init; }
    /// <summary>The minibatches.</summary>
    public required IBatchStream Batches { get; init; }
    /// <summary>How a step's gradient is formed from <see cref="Batches"/> (default: the minibatch gradient; SVAG and Gaussian SGD for the SDE test).</summary>
    public IGradientRule GradientRule { get; init; } = new MinibatchGradient();
    /// <summary>Steps in the whole run.</summary>
    public required int Steps { get; init; }
    /// <summary>The run's seed: the data stream and dropout are drawn from streams of it.</summary>
    public ulong Seed { get; init; }
    /// <summary>The loss (<see cref="Models.Loss.Names"/>).</summary>
    public string Loss { get; init; } = "ce";
    /// <summary>Dropout on in training steps (a stream of its own, checkpointed).</summary>
    public bool Dropout { get; init; }
    /// <summary>η at each step, for optimizers with a settable rate (<see cref="IHasLearningRate"/>); null: the optimizer's own.</summary>
    public Func<int, double>? LearningRate { get; init; }
    /// <summary>Curvature probes' batch and mode; null: no curvature offered (curvature-aware rules then fail).</summary>
    public ProbeSettings? Probe { get; init; }
    /// <summary>The held-out evaluation, or null.</summary>
    public Evaluator? Evaluator { get; init; }
    /// <summary>Steps between evaluations (one is also made after the last step).</summary>
    public int EvalEvery { get; init; } = 100;
    /// <summary>The run's folder (<c>steps.csv</c>, <c>checkpoint.safetensors</c>); null: nothing is written.</summary>
    public string? Folder { get; init; }
    /// <summary>Steps between checkpoints (one is also written at the end).</summary>
    public int CheckpointEvery { get; init; } = 100;
    /// <summary>Continue from the folder's checkpoint when there is one.</summary>
    public bool Resume { get; init; }
    /// <summary>The settings that make the run what it is; a resumed run must match them all.</summary>
    public IReadOnlyDictionary<string, string> Identity { get; init; } = new Dictionary<string, string>();
    /// <summary>Further metadata for the checkpoint (the command line).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; init; } = new Dictionary<string, string>();
    /// <summary>Called after every step.</summary>
    public Action<StepRecord>? OnStep { get; init; }
    /// <summary>Called with the checkpoint's step when a run resumes, before its first step.</summary>
    public Action<int>? OnResume { get; init; }

    /// <summary>
    /// Steps between the trainer's own sharpness measurements (0: none): λmax of the probe Hessian by Lanczos,
    /// warm-started from the last top eigenvector, before the update of every such step and of the last one, logged in
    /// the <c>sharpness</c> column whether or not the optimizer probes (the Edge-of-Stability experiment's measurement).
    /// Needs <see cref="Probe"/>; the warm start begins afresh after a resume.
    /// </summary>
    public int SharpnessEvery { get; init; }
    /// <summary>
    /// Sharpness measurements start from the last top eigenvector (true, the Edge-of-Stability experiment's
    /// accuracy) and are also made at the last step; false: each starts from the same fixed vector on the steps
    /// divisible by <see cref="SharpnessEvery"/> only, so a measurement depends on the weights alone and a resumed
    /// or extended run logs exactly what an uninterrupted one does.
    /// </summary>
    public bool SharpnessWarmStart { get; init; } = true;
    /// <summary>Lanczos iterations per sharpness measurement.</summary>
    public int SharpnessIterations { get; init; } = 20;
    /// <summary>Relative residual at which a sharpness measurement stops early.</summary>
    public double SharpnessTolerance { get; init; } = 1e-4;
    /// <summary>
    /// Called after each of the trainer's sharpness measurements with the step, λmax and its unit eigenvector
    /// (flattened in <see cref="Module.Parameters"/> order), while the parameters are still those of that step, before its update.
    /// </summary>
    public Action<int, double, NdArray>? OnSharpness { get; init; }
    /// <summary>Keep the minibatch accuracy of each step's training forward (an <c>accuracy</c> column after <c>loss</c>).</summary>
    public bool RecordAccuracy { get; init; }
    /// <summary>End the run at a non-finite loss and report the step (<see cref="TrainingResult.DivergedAt"/>) instead of failing.</summary>
    public bool StopWhenDiverged { get; init; }
    /// <summary>
    /// A loss above this multiple of the run's first loss counts as divergence, like a non-finite one (null: only
    /// a non-finite loss does). A checkpoint is written to disk only once the next step's loss shows its weights
    /// sound (finite and within the bound), so the checkpoint a diverged run keeps is never already poisoned.
    /// </summary>
    public double? DivergenceFactor { get; init; }
    /// <summary>
    /// The ranks the run is spread over (default: one process). With several, every rank runs this loop on the same
    /// settings (checked at the start): each takes its shard of every global batch and of the probe batch, the loss,
    /// gradient and every curvature product are share-weighted all-reduces (<see cref="DataParallel"/>), BatchNorm's
    /// running statistics are averaged after each step, so the weights stay the same bits on every rank (checked at
    /// each checkpoint); rank 0 alone writes the folder, every rank reads it to resume (a folder all ranks see).
    /// K-FAC's factors are computed on the whole probe batch by every rank (replicated, not sharded).
    /// </summary>
    public ICommunicator Communicator { get; init; } = SingleProcess.Instance;
    /// <summary>
    /// Over several ranks, training-mode BatchNorm normalizes by the global batch's statistics (synchronized, as
    /// PyTorch's SyncBatchNorm) in steps and probes alike, so the distributed loss, gradient and Hessian are the global
    /// batch's; false (the default, as DistributedDataParallel): each shard by its own.
    /// </summary>
    public bool SyncBatchNorm { get; init; }
    /// <summary>A stop request checked after every step: the run writes its checkpoint and throws <see cref="TrainingInterruptedException"/> (default: <see cref="StopSignal.Token"/>).</summary>
    public CancellationToken Stop { get; init; } = StopSignal.Token;

    /// <summary>The checkpoint's path in the folder.</summary>
    public string? CheckpointPath => Folder is null ? null : Path.Combine(Folder, "checkpoint.safetensors");

    /// <summary>The CSV columns this run writes.</summary>
    public string[] Columns =>
        [
            "step", "loss", .. RecordAccuracy ? ["accuracy"] : Array.Empty<string>(), "lr", "momentum", "weight_decay",
            .. Probe is null ? Array.Empty<string>() : ["sharpness", "lr_times_sharpness", "sharpness_lanczos"],
            .. Evaluator?.Columns ?? [], "seconds",
        ];

    /// <summary>
    /// One training step: a training-mode forward (BatchNorm on batch statistics, running statistics updated,
    /// dropout drawn from <paramref name="noise"/> when given), the gradient, then the optimizer's update with
    /// <paramref name="curvature"/>'s probes. Returns the minibatch loss; a non-finite loss throws before the
    /// parameters change.
    /// </summary>
    public static double Step(Module model, IOptimizer optimizer, string loss, NdArray inputs, NdArray targets, int step, RandomGenerator? noise,
        Func<StepContext, StepContext>? curvature = null, FlopCounter? flops = null, Action<NdArray>? outputs = null) =>
        Step(model, optimizer, loss, GradientDraw.Minibatch(inputs, targets), step, noise, curvature, flops, outputs);

    /// <summary>One training step with the gradient of <paramref name="draw"/> (see the overload on one minibatch).</summary>
    public static double Step(Module model, IOptimizer optimizer, string loss, GradientDraw draw, int step, RandomGenerator? noise,
        Func<StepContext, StepContext>? curvature = null, FlopCounter? flops = null, Action<NdArray>? outputs = null)
    {
        var ps = model.Parameters();
        (Tensor Value, Tensor[] Gradients) vg;
        using (flops is null ? null : FlopCounter.Count(flops)) vg = draw.Gradient(model, loss, noise, outputs);
        double l = vg.Value.ToScalar();
        if (!double.IsFinite(l)) throw new TrainingException($"the loss at step {step} is {l}");
        var context = new StepContext { Step = step, Loss = l, Parameters = ps, Gradients = vg.Gradients.Select(g => g.Data).ToArray() };
        optimizer.Step(curvature is null ? context : curvature(context));
        return l;
    }

    /// <summary>
    /// The minibatch loss and its gradient as a training step sees them: training mode, running statistics
    /// updated, dropout drawn from <paramref name="noise"/> when given.
    /// </summary>
    public static (Tensor Value, Tensor[] Gradients) Gradient(Module model, string loss, NdArray inputs, NdArray targets, RandomGenerator? noise,
        Action<NdArray>? outputs = null)
    {
        var ps = model.Parameters();
        Tensor x = inputs, y = targets;
        return Derivatives.ValueAndGrad(p =>
        {
            var o = model.Forward(new Bindings(ps, p, training: true) { UpdateStatistics = true, Noise = noise }, x);
            outputs?.Invoke(o.Data);
            return Models.Loss.Of(loss, o, y);
        }, ps.Select(p => (Tensor)p.Data).ToArray());
    }

    /// <summary>Runs the remaining steps (all of them, or those after the checkpoint) and writes the final checkpoint.</summary>
    public TrainingResult Run()
    {
        if (Steps < 1) throw new TrainingException($"a run needs at least one step, got {Steps}.");
        if (SharpnessEvery > 0 && Probe is null) throw new TrainingException("sharpness measurements need a probe batch.");
        if (LearningRate is not null && Optimizer is not IHasLearningRate)
            throw new TrainingException($"a learning-rate schedule needs an optimizer with a settable rate; {Optimizer.Name} sets its own.");
        if (DivergenceFactor is { } factor && !(factor > 1 && double.IsFinite(factor)))
            throw new TrainingException($"the divergence factor must be a finite number above 1, got {factor}.");
        using var listening = StopSignal.Listen();
        var ps = Model.Parameters();
        var comm = Communicator;
        bool writes = comm.Rank == 0;
        if (comm.Size > 1)
            DataParallel.RequireAgreement(comm, new Dictionary<string, string>(Identity.Select(kv => KeyValuePair.Create("run." + kv.Key, kv.Value)))
            {
                ["steps"] = Steps.ToString(CultureInfo.InvariantCulture), ["seed"] = Seed.ToString(CultureInfo.InvariantCulture), ["loss"] = Loss,
                ["optimizer"] = Optimizer.Name, ["rule"] = GradientRule.Name, ["parameters"] = Model.ParameterCount().ToString(CultureInfo.InvariantCulture),
                ["folder"] = Folder is null ? "" : Path.GetFullPath(Folder), ["resume"] = Resume.ToString(), ["dropout"] = Dropout.ToString(), ["sync_bn"] = SyncBatchNorm.ToString(),
            });
        var rule = comm.Size > 1 ? new DataParallelGradient(GradientRule, comm, SyncBatchNorm) : GradientRule;
        var rng = new RandomGenerator(Seed);
        // Each rank drops out its own examples with a stream of its own (rank 0's is the single-process one).
        ulong NoiseStart(int rank) => (1UL << 50) + ((ulong)rank << 44);
        var noise = Dropout ? new RandomGenerator(Seed, NoiseStart(comm.Rank)) : null;
        string NoiseKey(int rank) => rank == 0 ? "noise_offset" : $"noise_offset.rank{rank}";
        var csv = new CsvLog(Columns);
        var losses = new double[Steps];
        var lrs = new double[Steps];
        var sharpness = new double?[Steps];
        var audits = new double?[Steps];
        var accuracy = Enumerable.Repeat(double.NaN, Steps).ToArray();
        int? diverged = null;
        NdArray? top = null;
        var evaluations = new List<(int, double[])>();
        var trainFlops = new FlopCounter();
        var probeFlops = new FlopCounter();
        var probeClock = new Stopwatch();
        var auditClock = new Stopwatch();
        int first = 0;
        double secondsBefore = 0, probeBefore = 0, auditBefore = 0, trainFlopsBefore = 0, probeFlopsBefore = 0;
        string? checkpoint = CheckpointPath, csvPath = Folder is null ? null : Path.Combine(Folder, "steps.csv");
        if (Folder is not null && writes) Directory.CreateDirectory(Folder);

        if (Resume && checkpoint is not null && File.Exists(checkpoint))
        {
            // Everything in the file is checked before the model, the optimizer or the data cursor change.
            Checkpoint.Load(checkpoint, Model, Optimizer, saved =>
            {
                var differs = Identity.Where(kv => saved.GetValueOrDefault("run." + kv.Key) != kv.Value)
                    .Select(kv => $"{kv.Key} '{saved.GetValueOrDefault("run." + kv.Key) ?? "(none)"}' (this run: '{kv.Value}')").ToList();
                if (differs.Count > 0)
                    throw new TrainingException($"{checkpoint} belongs to another run: it has {string.Join(", ", differs)}; resume with the same settings or use another --out.");
                long at = Checkpoint.Integer(saved, "step", checkpoint);
                if (at < 0 || at > Steps) throw new TrainingException($"{checkpoint}: the checkpoint is at step {at}, outside the run's 0 to {Steps} steps.");
                first = (int)at;
                ulong rngOffset = Checkpoint.Unsigned(saved, "rng_offset", checkpoint);
                if (noise is not null && !saved.ContainsKey(NoiseKey(comm.Rank)))
                    throw new TrainingException($"{checkpoint} has no dropout stream for rank {comm.Rank} ('{NoiseKey(comm.Rank)}'); resume a dropout run on the number of ranks that wrote it.");
                ulong? noiseOffset = noise is null ? null : Checkpoint.Unsigned(saved, NoiseKey(comm.Rank), checkpoint);
                secondsBefore = Number(saved, "seconds", checkpoint);
                probeBefore = Number(saved, "probe_seconds", checkpoint);
                auditBefore = Number(saved, "audit_seconds", checkpoint);
                trainFlopsBefore = Number(saved, "train_flops", checkpoint);
                probeFlopsBefore = Number(saved, "probe_flops", checkpoint);
                ReadLog(csvPath!, csv, first, losses, lrs, accuracy, sharpness, audits, evaluations);
                Batches.Restore(saved, checkpoint);
                rng = new RandomGenerator(Seed, rngOffset);
                if (noiseOffset is { } n) noise = new RandomGenerator(Seed, n);
            });
            OnResume?.Invoke(first);
        }

        var clock = Stopwatch.StartNew();
        double Seconds() => secondsBefore + clock.Elapsed.TotalSeconds - auditClock.Elapsed.TotalSeconds;

        // The newest checkpoint, held until the next step's loss shows its weights sound (see DivergenceFactor).
        (byte[] Checkpoint, string Log, int Step)? pending = null;
        int savedStep = first;
        void Flush()
        {
            if (pending is not { } p) return;
            if (writes)
            {
                AtomicFile.WriteAllText(csvPath!, p.Log);
                AtomicFile.WriteAllBytes(checkpoint!, p.Checkpoint);
            }
            savedStep = p.Step;
            pending = null;
        }

        void Save(int step, bool deferred = false)
        {
            if (Folder is null) return;
            var meta = new Dictionary<string, string>(Batches.Cursor())
            {
                ["rng_offset"] = rng.Offset.ToString(CultureInfo.InvariantCulture),
                ["seconds"] = R(Seconds()),
                ["probe_seconds"] = R(probeBefore + probeClock.Elapsed.TotalSeconds),
                ["audit_seconds"] = R(auditBefore + auditClock.Elapsed.TotalSeconds),
                ["train_flops"] = R(trainFlopsBefore + trainFlops.Flops),
                ["probe_flops"] = R(probeFlopsBefore + probeFlops.Flops),
            };
            DataParallel.RequireReplicated(comm, Model, step);
            if (noise is not null)
            {
                var offsets = comm.AllGather((long)noise.Offset);
                for (int r = 0; r < offsets.Length; r++) meta[NoiseKey(r)] = ((ulong)offsets[r]).ToString(CultureInfo.InvariantCulture);
            }
            foreach (var (k, v) in Metadata) meta[k] = v;
            foreach (var (k, v) in Identity) meta["run." + k] = v;
            pending = (Checkpoint.Serialize(Model, Optimizer, step, meta), csv.ToCsv(), step);
            if (!deferred) Flush();
        }

        string Kept() => Folder is null ? "" : savedStep > 0 ? $" (the checkpoint at step {savedStep} and steps.csv are kept in {Folder})" : $" (no checkpoint was written yet)";

        for (int step = first; step < Steps; step++)
        {
            if (LearningRate is not null) ((IHasLearningRate)Optimizer).LearningRate = LearningRate(step);
            var draw = rule.Draw(Batches, rng);
            var (x, y) = (draw.Inputs, draw.Targets);
            double loss;
            NdArray? logits = null;
            double? measured = null;
            StepContext Offer(StepContext c)
            {
                c = WithCurvature(c, ps, x, y, draw.Share, rng, probeClock, probeFlops, auditClock);
                if (SharpnessEvery > 0 && (c.Step % SharpnessEvery == 0 || SharpnessWarmStart && c.Step == Steps - 1))
                {
                    // A measurement, not the method's cost: timed with the audits, outside the run's wall-clock and probe FLOPs.
                    var r = Lanczos.Run(c.AuditCurvature!(), SharpnessIterations, k: 1, tolerance: SharpnessTolerance, start: SharpnessWarmStart ? top : null, rng: new RandomGenerator(Seed + 1), vectors: true);
                    measured = r.Values[0];
                    top = r.Vectors![0];
                    OnSharpness?.Invoke(c.Step, r.Values[0], top);
                }
                return c;
            }
            string? divergence = null;
            try
            {
                loss = Step(Model, Optimizer, Loss, draw, step, noise, Offer, trainFlops, RecordAccuracy ? o => logits = o : null);
                // Synchronized BatchNorm gave every rank the same global moments already; otherwise each rank's are averaged.
                if (!SyncBatchNorm) DataParallel.AverageBuffers(comm, Model, draw.Share);
                double firstLoss = step == 0 ? loss : losses[0];
                if (DivergenceFactor is { } f && loss > f * firstLoss)
                    divergence = $"the loss at step {step} is {loss:G4}, above {f:G4} × the first loss {firstLoss:G4}";
            }
            catch (Exception e) when (StopWhenDiverged && e is TrainingException or ArithmeticException)
            {
                // A non-finite loss, or a curvature probe that met non-finite weights (NaN λmax): the run diverged.
                divergence = e.Message;
                loss = double.NaN;
            }
            catch (Exception e) when (e is TrainingException or ArithmeticException or ArgumentOutOfRangeException)
            {
                string message = e.Message.Split(" (Parameter")[0].TrimEnd('.');
                if (message.EndsWith("; stopping", StringComparison.Ordinal)) message = message[..^"; stopping".Length];
                throw new TrainingException($"{message}; stopping{Kept()}.");
            }
            if (divergence is not null)
            {
                // The weights this step started from are unsound: the checkpoint held for them is dropped.
                pending = null;
                if (!StopWhenDiverged) throw new TrainingException($"{divergence}; stopping{Kept()}.");
                diverged = step;
                // Nothing after the divergent step counts: its series hold no numbers from there on.
                Array.Fill(losses, double.NaN, step, Steps - step);
                Array.Fill(lrs, double.NaN, step, Steps - step);
                break;
            }
            // This step's loss is sound, so are the weights it started from: the held checkpoint goes to disk.
            Flush();
            if (logits is not null) accuracy[step] = DataParallel.WeightedSum(comm, Metrics.Accuracy(logits, y), draw.Share);
            var log = Optimizer.Last;
            if (measured is not null) log = log with { Sharpness = measured };
            losses[step] = loss;
            lrs[step] = log.LearningRate;
            sharpness[step] = log.Sharpness;
            audits[step] = log.AuditSharpness;
            double[]? evaluation = null;
            if (Evaluator is not null && ((step + 1) % EvalEvery == 0 || Evaluator.AtLastStep && step + 1 == Steps))
            {
                evaluation = Evaluator.Evaluate(Model);
                evaluations.Add((step + 1, evaluation));
            }
            object?[] row =
            [
                step, loss, .. RecordAccuracy ? [accuracy[step]] : Array.Empty<object?>(), log.LearningRate, log.Momentum, log.WeightDecay,
                .. Probe is null ? Array.Empty<object?>() : [log.Sharpness, log.Sharpness is { } sh ? log.LearningRate * sh : null, log.AuditSharpness],
                .. Evaluator is null ? Array.Empty<object?>() : evaluation?.Select(v => (object?)v) ?? Evaluator.Columns.Select(_ => (object?)null),
                Seconds(),
            ];
            csv.Add(row);
            OnStep?.Invoke(new StepRecord(step, loss, log, evaluation));
            // Every rank stops at the same step: a signal seen by any of them stops all.
            if (DataParallel.Any(comm, Stop.IsCancellationRequested) && step + 1 < Steps)
            {
                Save(step + 1);
                throw new TrainingInterruptedException(step + 1, checkpoint);
            }
            if ((step + 1) % CheckpointEvery == 0 && step + 1 < Steps) Save(step + 1, deferred: true);
        }
        if (diverged is null)
        {
            // No step follows the last update to test it: its weights are checked directly.
            var bad = Model.NamedParameters().FirstOrDefault(p => StateDictCheck.FirstNonFinite(p.Parameter.Data) is not null).Name;
            if (bad is not null) throw new TrainingException($"the weights after the last step are not finite ('{bad}'); stopping{Kept()}.");
            Save(Steps);
        }
        // FLOPs are the work of every rank (each counted its shard's); a resumed run's earlier part is rank 0's count on every
        // rank, which equal shards make the same. Seconds are rank 0's wall-clock.
        double AllRanks(double flops) => comm.Size > 1 ? DataParallel.WeightedSum(comm, flops, 1) : flops;
        return new TrainingResult(csv, losses, lrs, sharpness, audits, evaluations, Seconds(), probeBefore + probeClock.Elapsed.TotalSeconds,
            auditBefore + auditClock.Elapsed.TotalSeconds, AllRanks(trainFlopsBefore + trainFlops.Flops), AllRanks(probeFlopsBefore + probeFlops.Flops), accuracy, diverged);
    }

    /// <summary>The step's context with the probes this run offers: the probe batch's Hessian, the minibatch's, K-FAC, and audits.</summary>
    private StepContext WithCurvature(StepContext c, IReadOnlyList<Parameter> ps, NdArray x, NdArray y, double share, RandomGenerator rng, Stopwatch probeClock, FlopCounter probeFlops, Stopwatch auditClock)
    {
        if (Probe is not { } probe) return c;
        NdArray[] Values() => ps.Select(p => p.Data).ToArray();
        var comm = Communicator;
        var (probeX, probeShare) = DataParallel.ShardRows(probe.Inputs, comm);
        var probeY = DataParallel.ShardRows(probe.Targets, comm).Rows;
        ILinearOperator Spread(ILinearOperator local, double part) => comm.Size > 1 ? new DistributedOperator(local, part, comm, SyncBatchNorm) : local;
        ILinearOperator ProbeHessian() => Spread(new HessianOperator(Models.Loss.Function(Model, Loss, probeX, probeY, probe.TrainingMode), Values()), probeShare);
        return new StepContext
        {
            Step = c.Step, Loss = c.Loss, Parameters = c.Parameters, Gradients = c.Gradients,
            Curvature = () => new TimedOperator(ProbeHessian(), probeClock, probeFlops),
            MinibatchCurvature = () => new TimedOperator(Spread(new HessianOperator(Models.Loss.Function(Model, Loss, x, y, training: true), Values()), share), probeClock, probeFlops),
            Kfac = (eigenvalueCorrected, basis) =>
            {
                probeClock.Start();
                try { using (FlopCounter.Count(probeFlops)) return KroneckerFactoredCurvature.Compute(Model, Loss, probe.Inputs, rng, training: probe.TrainingMode, eigenvalueCorrected: eigenvalueCorrected, basis: basis); }
                finally { probeClock.Stop(); }
            },
            AuditEvery = probe.AuditEvery,
            AuditCurvature = () => new TimedOperator(ProbeHessian(), auditClock, null),
        };
    }

    private void ReadLog(string csvPath, CsvLog csv, int first, double[] losses, double[] lrs, double[] accuracy, double?[] sharpness, double?[] audits, List<(int, double[])> evaluations)
    {
        if (!File.Exists(csvPath)) throw new TrainingException($"--resume: {csvPath} is missing but the checkpoint is at step {first}.");
        var lines = File.ReadLines(csvPath).ToList();
        if (lines.Count == 0 || lines[0] != string.Join(',', csv.Columns))
            throw new TrainingException($"{csvPath}: the header is '{(lines.Count > 0 ? lines[0] : "")}', expected '{string.Join(',', csv.Columns)}'.");
        if (lines.Count - 1 < first) throw new TrainingException($"{csvPath} holds {lines.Count - 1} steps but the checkpoint is at step {first}.");
        var columns = csv.Columns.Select((name, i) => (name, i)).ToDictionary(t => t.name, t => t.i);
        int evalAt = Evaluator is null ? -1 : columns[Evaluator.Columns[0]];
        for (int r = 0; r < first; r++)
        {
            var f = lines[r + 1].Split(',');
            double? Cell(int i) => f[i].Length == 0 ? null
                : double.TryParse(f[i], NumberStyles.Float, CultureInfo.InvariantCulture, out double v) ? v
                : throw new TrainingException($"{csvPath}, line {r + 2}: '{f[i]}' in column {csv.Columns[i]} is not a number.");
            if (f.Length != csv.Columns.Count || Cell(0) != r)
                throw new TrainingException($"{csvPath}, line {r + 2}: expected step {r} with {csv.Columns.Count} fields; the log does not belong to this checkpoint.");
            losses[r] = Cell(1) ?? double.NaN;
            lrs[r] = Cell(columns["lr"]) ?? double.NaN;
            if (RecordAccuracy) accuracy[r] = Cell(columns["accuracy"]) ?? double.NaN;
            if (Probe is not null) { sharpness[r] = Cell(columns["sharpness"]); audits[r] = Cell(columns["sharpness_lanczos"]); }
            if (evalAt >= 0 && Cell(evalAt) is not null)
                evaluations.Add((r + 1, Evaluator!.Columns.Select(c => Cell(columns[c]) ?? double.NaN).ToArray()));
            csv.AddFields(f);
        }
    }

    private static double Number(IReadOnlyDictionary<string, string> meta, string key, string path) =>
        meta.TryGetValue(key, out var v) && double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out double x) && double.IsFinite(x) ? x
            : throw new InvalidDataException($"{path}: checkpoint metadata '{key}' is missing or not a number.");

    private static string R(double v) => v.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>Counts the time (and FLOPs, when given) of every product on the wrapped operator.</summary>
    private sealed class TimedOperator(ILinearOperator inner, Stopwatch clock, FlopCounter? flops) : ILinearOperator
    {
        public long Dimension => inner.Dimension;
        public DType DType => inner.DType;
        public Device Device => inner.Device;
        public NdArray Apply(NdArray v)
        {
            clock.Start();
            try { using (flops is null ? null : FlopCounter.Count(flops)) return inner.Apply(v); }
            finally { clock.Stop(); }
        }
    }
}
