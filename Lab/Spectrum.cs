using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Curvature.Autodiff;
using Curvature.Engine;
using Curvature.Lab.Reporting;
using Curvature.Kernels;
using Curvature.Models;
using Curvature.Models.Data;
using Curvature.Spectral;
using Curvature.Training.Distributed;
using ScottPlot;

namespace Curvature.Lab;

/// <summary>
/// <c>Lab spectrum</c>: the Hessian spectrum of a model's loss on a batch: loss and gradient norm, the top-k
/// eigenvalues by Lanczos with their residuals, the trace by Hutchinson with its standard error, the Rayleigh
/// quotient along the all-ones direction, and the spectral density by stochastic Lanczos quadrature.
/// The top-k Lanczos run starts from a Rademacher probe and counts as the first SLQ probe; the trace samples
/// are zᵀHz = n·α₁ of the SLQ runs, so the whole report costs probes × iterations HVPs.
/// </summary>
public static class Spectrum
{
    /// <summary>What the verb measured.</summary>
    /// <param name="PerLayer">Each chosen parameter's diagonal Hessian block (empty unless asked for).</param>
    /// <param name="Eigenvectors">The unit Ritz vectors of <paramref name="TopEigenvalues"/>, flat in parameter order.</param>
    /// <param name="TraceComparison">With <c>--trace hutch++</c>: Hutchinson and Hutch++ at the same budget of products.</param>
    public sealed record Report(double Loss, double GradNorm, double[] TopEigenvalues, double[] Residuals, double Trace, double TraceStderr,
        double RayleighOnes, SpectralDensity Density, long Parameters, int Examples, int HessianProducts, double Seconds,
        IReadOnlyList<LayerSpectrum> PerLayer, NdArray[] Eigenvectors, TraceComparison? TraceComparison);

    /// <summary>One parameter block's Hessian ∇²_bb L: its top eigenvalues (Lanczos on the block) and trace (Hutchinson).</summary>
    /// <param name="Iterations">Lanczos steps the block took: at most the budget, fewer once its top-k converged (<see cref="BlockTolerance"/>).</param>
    public sealed record LayerSpectrum(string Name, long Parameters, double[] TopEigenvalues, double Trace, double TraceStderr, int Iterations);

    /// <summary>
    /// A block's Lanczos stops once its top-k Ritz pairs have ‖Hy − θy‖ ≤ 1e-4·|θ| (the tridiagonal's estimate): a
    /// block has few well-separated top eigenvalues and converges in a fraction of the budget, and a per-layer report
    /// costs blocks × steps products, so the steps not needed are most of its cost.
    /// </summary>
    public const double BlockTolerance = 1e-4;

    /// <summary>The trace by Hutchinson and by Hutch++ for the same number of products.</summary>
    public sealed record TraceComparison(Estimate Hutchinson, Estimate HutchPlusPlus);

    /// <summary>What to compute beyond the top-k, trace and density.</summary>
    /// <param name="PerLayer">Parameter names or module prefixes whose blocks to report (empty: every parameter); null: none.</param>
    /// <param name="TraceBudget">With <paramref name="HutchPlusPlus"/>: products for each of the two trace estimates (a multiple of 3).</param>
    /// <param name="Operator">The curvature: hessian, ggn, fisher (for softmax cross-entropy and MSE the model's Fisher is the GGN,
    /// Martens 2014), empirical-fisher, kfac or ekfac.</param>
    public sealed record Extras(IReadOnlyList<string>? PerLayer = null, bool HutchPlusPlus = false, int TraceBudget = 30, string Operator = "hessian");

    /// <summary>The curvature operators <c>--operator</c> takes.</summary>
    public static readonly string[] Operators = ["hessian", "ggn", "fisher", "empirical-fisher", "kfac", "ekfac"];

    internal static Command Command(TextWriter output0)
    {
        var common = new Cli.CommonOptions();
        var model = new Option<string?>("--model") { Description = $"Model kind ({string.Join(", ", ModelFiles.Names)}; default: the kind the weights file records)" };
        model.AcceptOnlyFromAmong(ModelFiles.Names);
        var weights = new Option<string>("--weights") { Description = "Weights (safetensors, PyTorch state_dict names)", Required = true };
        var batch = new Option<string>("--batch") { Description = "Batch file (safetensors with 'inputs' and 'targets')", Required = true };
        var loss = new Option<string?>("--loss") { Description = "mse or ce (default: the loss the weights file records, else mse for mlp, ce for resnet20 and gpt)" };
        loss.AcceptOnlyFromAmong(Loss.Names);
        var mode = Options.OneOf("--mode", "Loss in eval or train mode (matters for BatchNorm and dropout)", "eval", "eval", "train");
        var topk = Options.Int("--topk", "Largest eigenvalues to report", 5, max: 1000);
        var iters = Options.Int("--iters", "Lanczos iterations (top-k and each SLQ probe)", 40, max: 100_000);
        var probes = Options.Int("--probes", "Rademacher probes for the trace and the density", 10, max: 100_000);
        var chunk = Options.Int("--chunk", "Examples per chunk of the Hessian product (memory of one chunk)", 5000);
        var activation = new Option<string?>("--activation") { Description = "MLP activation when the file's metadata does not say (tanh, relu)" };
        activation.AcceptOnlyFromAmong("tanh", "relu");
        var outDir = new Option<string?>("--out") { Description = "Folder for spectrum.json and density.png" };
        var heads = Options.OptionalInt("--heads", "GPT heads when the file's metadata has no n_head", max: 4096);
        var perLayer = new Option<string[]>("--per-layer")
        {
            Description = "Also the top-k eigenvalues and trace of each parameter's own Hessian block (∇²_bb L), by PyTorch parameter name; "
                + "values restrict it to those parameters or module prefixes (e.g. --per-layer layer1.0 fc)",
            Arity = ArgumentArity.ZeroOrMore,
            AllowMultipleArgumentsPerToken = true,
        };
        var vectors = new Option<string?>("--vectors")
        {
            Description = "Folder for the top-k eigenvectors: eigenvector_0.safetensors ..., each a state dict in the model's parameter names "
                + "with its eigenvalue in the metadata (loadable in PyTorch)",
        };
        var trace = Options.OneOf("--trace", "Trace estimator: hutchinson (free from the density's probes) or hutch++ (Meyer et al. 2021; "
            + "reported beside Hutchinson at the same budget)", "hutchinson", "hutchinson", "hutch++");
        var curvature = Options.OneOf("--operator", "Curvature operator: hessian; ggn (generalized Gauss-Newton); fisher (the model's Fisher: "
            + "for softmax cross-entropy and MSE, the GGN); empirical-fisher (mean of per-example gradient outer products); kfac (Linear, Conv2d, "
            + "BatchNorm2d, LayerNorm and Embedding layers; a model with other parameters is refused, naming them); ekfac (K-FAC's eigenbasis with "
            + "re-estimated scales, George et al. 2018)", "hessian", Operators);
        var traceBudget = Options.Int("--trace-budget", "Products for each trace estimate with --trace hutch++ (a multiple of 3)", 30, min: HutchPlusPlus.MinimumBudget, max: 100_000);
        traceBudget.Validators.Add(r =>
        {
            int b = r.GetValueOrDefault<int>();
            if (b % 3 != 0) r.AddError($"--trace-budget {b}: Hutch++ splits its budget in three (sketch, exact part, residual); expected a multiple of 3.");
        });

        var cmd = new Command("spectrum", "Hessian spectrum of a model's loss on a batch: top eigenvalues, trace, density; per-layer blocks and eigenvectors on request");
        foreach (var o in new Option[] { model, weights, batch, loss, mode, topk, iters, probes, chunk, activation, outDir, heads, perLayer, vectors, trace, traceBudget, curvature }) cmd.Options.Add(o);
        common.AddTo(cmd);
        var distributed = new DistributedOptions();
        distributed.AddTo(cmd);
        cmd.SetAction(r =>
        {
            var output = output0;
            var (device, ranks) = distributed.Start(r, common, ref output);
            bool root = ranks.Rank == 0;
            string weightsPath = r.GetValue(weights)!, batchPath = r.GetValue(batch)!;
            var (m, file) = ModelFiles.Load(r.GetValue(model), weightsPath, r.GetValue(activation), r.GetValue(heads));
            string kind = r.GetValue(model) ?? ModelFiles.KindOf(file)!;
            if (ModelFiles.WidenedNote(file, weightsPath) is { } note) output.WriteLine(note);
            string lossName = ModelFiles.LossOf(r.GetValue(loss), file, kind);
            var read = BatchFile.Read(batchPath);
            ModelFiles.CheckBatch(m, read, batchPath);
            m.To(device);
            var data = new Dataset(read.Inputs.To(device), read.Labels.To(device));
            var extras = new Extras(r.GetResult(perLayer) is null ? null : r.GetValue(perLayer) ?? [], r.GetValue(trace) == "hutch++", r.GetValue(traceBudget), r.GetValue(curvature)!);
            var blocks = extras.PerLayer is null ? [] : ChooseBlocks(m, extras.PerLayer);
            if (r.GetValue(vectors) is { } vectorDir && root)
            {
                // Checked before any product: a run of minutes must not end unable to write its vectors.
                if (File.Exists(vectorDir)) throw new LabException($"--vectors {vectorDir} is a file; expected a folder.");
                try { Directory.CreateDirectory(vectorDir); }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new LabException($"--vectors {vectorDir}: cannot create the folder ({e.Message})."); }
                Cli.RequireWritableFile(Path.Combine(vectorDir, "eigenvector_0.safetensors"), "--vectors");
            }
            Report report = null!;
            int planned = PlannedProducts(r.GetValue(topk), r.GetValue(iters), r.GetValue(probes))
                + (extras.PerLayer is null ? 0 : blocks.Sum(b => (int)Math.Min(r.GetValue(iters), m.Parameters()[b].Shape.Size)))
                + (extras.HutchPlusPlus ? 2 * extras.TraceBudget : 0);
            output.WriteLine($"spectrum: {m.ParameterCount():N0} parameters, {data.Count} examples, operator {extras.Operator}; {planned} {(extras.Operator == "hessian" ? "Hessian-vector" : "operator")} products planned");
            ProgressDisplay.Run(output, [("spectrum", planned)], tasks =>
                report = Run(m, data, lossName, r.GetValue(mode) == "train", r.GetValue(topk), r.GetValue(iters), r.GetValue(probes),
                    r.GetValue(chunk), new RandomGenerator(r.GetValue(common.Seed)), done => tasks[0].Report((int)Math.Min(done, planned), $"{done} HVPs"), extras, ranks, distributed.Sync(r)));
            Print(output, report, lossName, r.GetValue(mode)!);
            if (ranks.Size > 1)
                output.WriteLine($"distributed: {ranks.Describe}; collectives {ranks.Traffic.Calls:N0} calls, {ranks.Traffic.Bytes / 1e6:0.00} MB from rank 0, {ranks.Traffic.Seconds:0.00} s");
            if (!root) return 0;
            var files = r.GetValue(vectors) is { } dirOfVectors ? WriteEigenvectors(m, report, dirOfVectors, kind, lossName, r.GetValue(mode)!, extras.Operator) : [];
            foreach (var f in files) output.WriteLine($"wrote {f}");
            var json = ToJson(report, kind, lossName, r.GetValue(mode)!, r.GetValue(iters), r.GetValue(probes), files, extras.Operator);
            if (r.GetValue(common.Json) is { } path) AtomicFile.WriteAllText(path, json);
            if (r.GetValue(outDir) is { } dir)
            {
                Directory.CreateDirectory(dir);
                AtomicFile.WriteAllText(Path.Combine(dir, "spectrum.json"), json);
                PlotDensity(report, Path.Combine(dir, "density.png"), r.GetValue(probes), r.GetValue(iters));
                output.WriteLine($"wrote {Path.Combine(dir, "spectrum.json")}, {Path.Combine(dir, "density.png")}");
            }
            return 0;
        });
        return cmd;
    }

    /// <summary>
    /// Computes the report for a model on a batch. Over several <paramref name="ranks"/>, each takes its shard of the
    /// batch and every product is the share-weighted all-reduce of the shards' (<see cref="DistributedOperator"/>);
    /// K-FAC, not a mean over examples, is computed on the whole batch by every rank.
    /// </summary>
    public static Report Run(Module model, Dataset data, string loss, bool training, int topk, int iterations, int probes, int chunk, RandomGenerator rng,
        Action<long>? products = null, Extras? extras = null, ICommunicator? ranks = null, bool syncBatchNorm = false)
    {
        extras ??= new Extras();
        ranks ??= SingleProcess.Instance;
        var whole = data;
        double share = 1;
        if (ranks.Size > 1)
        {
            var (start, count) = DataParallel.Shard(data.Count, ranks.Rank, ranks.Size);
            data = new Dataset(data.Inputs.Slice(0, start, count), data.Labels.Slice(0, start, count));
            share = count / (double)whole.Count;
        }
        ILinearOperator Spread(ILinearOperator local) => ranks.Size > 1 ? new DistributedOperator(local, share, ranks, syncBatchNorm) : local;
        var clock = Stopwatch.StartNew();
        if (model.Parameters().Count == 0) throw new LabException("the model has no parameters.");
        var dtype = model.Parameters()[0].Data.DType;
        var inputs = data.Inputs.DType == dtype || data.Inputs.DType == DType.Int64 ? data.Inputs : data.Inputs.Cast(dtype);
        var terms = new List<(Func<Tensor[], Tensor>, double)>();
        for (int start = 0; start < data.Count; start += chunk)
        {
            int count = Math.Min(chunk, data.Count - start);
            terms.Add((Loss.Function(model, loss, inputs.Rows(start, count), data.Labels.Rows(start, count), training), count / (double)data.Count));
        }
        var hessian = new HessianOperator(terms, model.Parameters().Select(p => p.Data).ToArray());
        long counted = 0;
        Action<long>? tell = products is null ? null : _ => products(++counted);
        var wholeInputs = whole.Inputs.DType == dtype || whole.Inputs.DType == DType.Int64 ? whole.Inputs : whole.Inputs.Cast(dtype);
        var op = new CountingOperator(extras.Operator is "kfac" or "ekfac" ? Curvature(model, hessian, loss, wholeInputs, whole.Labels, training, extras.Operator, rng)
            : Spread(Curvature(model, hessian, loss, inputs, data.Labels, training, extras.Operator, rng)), tell);
        (double Loss, NdArray Gradient) local;
        using (DataParallel.SynchronizeBatchNorm(ranks, share, syncBatchNorm)) local = hessian.LossAndGradient();
        var (localValue, localGrad) = local;
        double value = DataParallel.WeightedSum(ranks, localValue, share);
        var grad = DataParallel.WeightedSum(ranks, [localGrad], share)[0];

        // With --per-layer, each block's trace comes from the SLQ probes' own first products: a Lanczos run from a
        // Rademacher z first forms H·z/‖z‖, and z_b·(Hz)_b has mean tr(H_bb) (the cross terms z_bᵀH_bc z_c have mean zero).
        var blocks = extras.PerLayer is null ? [] : ChooseBlocks(model, extras.PerLayer);
        var probed = new BlockProbes(op, model.NamedParameters().Select(p => p.Parameter.Shape).ToArray(), blocks);
        var firstProbe = rng.Rademacher(new Shape((int)op.Dimension), op.DType, op.Device);
        probed.Arm(firstProbe);
        var first = Lanczos.Run(probed, iterations, k: topk, which: Which.LargestAlgebraic, start: firstProbe, vectors: true);
        // The residuals reported are measured, ‖Hy − θy‖ / |θ| with one more product per pair: the tridiagonal's
        // own estimate β_m·|s_m| is exact only in exact arithmetic and looks impossibly good (1e-17) on a float32 operator.
        var residuals = first.Values.Select((theta, i) =>
        {
            var y = first.Vectors![i];
            var r = op.Apply(y) - y * theta;
            return Math.Sqrt(r.Dot(r)) / Math.Max(Math.Abs(theta), double.Epsilon) / Math.Sqrt(y.Dot(y));
        }).ToArray();
        var runs = new List<LanczosResult> { first };
        for (int p = 1; p < probes; p++)
        {
            // StochasticLanczosQuadrature.Probe's runs, one at a time so each start is known: the same draws in the same order.
            var z = rng.Rademacher(new Shape((int)op.Dimension), op.DType, op.Device);
            probed.Arm(z);
            runs.Add(Lanczos.Run(probed, iterations, k: 1, start: z));
        }
        var trace = Hutchinson.TraceFromLanczos(runs, op.Dimension);
        var density = StochasticLanczosQuadrature.FromRuns(runs);

        var ones = NdArray.Full(new Shape((int)op.Dimension), 1 / Math.Sqrt(op.Dimension), op.DType, op.Device);
        double rayleigh = ones.Dot(op.Apply(ones));

        var perLayer = extras.PerLayer is null ? [] : PerLayer(model, extras.Operator == "hessian" ? hessian : null, op, blocks, probed.Samples, topk, iterations, rng, tell, Spread);
        TraceComparison? comparison = null;
        if (extras.HutchPlusPlus)
            comparison = new TraceComparison(Hutchinson.Trace(op, extras.TraceBudget, rng), HutchPlusPlus.Trace(op, extras.TraceBudget, rng));
        return new Report(value, Vectors.Norm(grad), first.Values, residuals, trace.Value, trace.StandardError, rayleigh, density,
            op.Dimension, whole.Count, hessian.Products, clock.Elapsed.TotalSeconds, perLayer, first.Vectors!, comparison);
    }

    /// <summary>The operator <c>--operator</c> names, on the whole batch (the Hessian in chunks).</summary>
    private static ILinearOperator Curvature(Module model, HessianOperator hessian, string loss, NdArray inputs, NdArray labels, bool training, string name, RandomGenerator rng)
    {
        switch (name)
        {
            case "hessian": return hessian;
            case "ggn" or "fisher": return GaussNewtonOperator.ForModel(model, loss, inputs, labels, training);
            case "empirical-fisher": return new EmpiricalFisherOperator(model, loss, inputs, labels, training);
            case "kfac" or "ekfac":
                var kfac = KroneckerFactoredCurvature.Compute(model, loss, inputs, rng, damping: 0, training: training, eigenvalueCorrected: name == "ekfac");
                if (kfac.Uncovered.Count > 0)
                {
                    var names = model.NamedParameters();
                    var missing = kfac.Uncovered.Select(i => names[i].Name).ToArray();
                    throw new UsageException($"--operator {name}: K-FAC has no block for {missing.Length} parameter(s) of this model ({string.Join(", ", missing.Take(6))}"
                        + $"{(missing.Length > 6 ? ", …" : "")}); it covers Linear, Conv2d, BatchNorm2d, LayerNorm and Embedding layers, and a zero block would understate the curvature. Use --operator ggn, its exact counterpart.");
                }
                return kfac;
            default: throw new UsageException($"--operator {name}: expected one of {string.Join(", ", Operators)}.");
        }
    }

    /// <summary>
    /// The indices of the parameters that <paramref name="filters"/> name: each filter is a parameter name or a module
    /// prefix (<c>layer1.0</c> takes <c>layer1.0.conv1.weight</c> …); none means every parameter. A filter that
    /// names nothing is a usage error listing the model's modules.
    /// </summary>
    public static int[] ChooseBlocks(Module model, IReadOnlyList<string> filters)
    {
        var names = model.NamedParameters().Select(p => p.Name).ToArray();
        if (filters.Count == 0) return Enumerable.Range(0, names.Length).ToArray();
        static bool Under(string name, string filter) => name == filter || name.StartsWith(filter + ".", StringComparison.Ordinal);
        var unknown = filters.Where(f => !names.Any(n => Under(n, f))).ToArray();
        if (unknown.Length > 0)
        {
            var modules = names.Select(n => n.Contains('.') ? n[..n.LastIndexOf('.')] : n).Distinct().ToArray();
            throw new UsageException($"--per-layer: {string.Join(", ", unknown.Select(u => $"'{u}'"))} names no parameter of this model; expected a parameter name "
                + $"or a module prefix, e.g. {string.Join(", ", modules.Take(8))}{(modules.Length > 8 ? $" (and {modules.Length - 8} more modules)" : "")}.");
        }
        return Enumerable.Range(0, names.Length).Where(i => filters.Any(f => Under(names[i], f))).ToArray();
    }

    /// <summary>
    /// Each block's top-k by Lanczos on ∇²_bb L (whose products carry tangents only from the block's layer on), and
    /// every block's trace from <paramref name="samples"/>, the whole report's probes z_bᵀ(Hz)_b (<see cref="BlockProbes"/>).
    /// </summary>
    private static LayerSpectrum[] PerLayer(Module model, HessianOperator? hessian, ILinearOperator whole, int[] blocks, IReadOnlyList<double[]> samples, int topk, int iterations,
        RandomGenerator rng, Action<long>? tell, Func<ILinearOperator, ILinearOperator> spread)
    {
        var named = model.NamedParameters();
        var shapes = named.Select(p => p.Parameter.Shape).ToArray();
        var offsets = new long[shapes.Length];
        for (int i = 1; i < shapes.Length; i++) offsets[i] = offsets[i - 1] + shapes[i - 1].Size;
        return blocks.Select((b, j) =>
        {
            // A Hessian block's products start their tangents at the block's layer and, recorded once, sweep only the
            // tangent passes after that; another operator's block embeds in zeros.
            var block = new CountingOperator(hessian is null ? new BlockOperator(whole, offsets[b], shapes[b].Size) : spread(hessian.Block([b]).Recorded()), tell);
            int steps = (int)Math.Min(iterations, block.Dimension);
            var run = Lanczos.Run(block, steps, k: Math.Min(topk, steps), which: Which.LargestAlgebraic, tolerance: BlockTolerance,
                start: rng.Rademacher(new Shape((int)block.Dimension), block.DType, block.Device));
            var t = Hutchinson.Summarize(samples.Select(s => s[j]).ToArray());
            return new LayerSpectrum(named[b].Name, block.Dimension, run.Values, t.Value, t.StandardError, run.Iterations);
        }).ToArray();
    }

    /// <summary>
    /// Writes each top eigenvector as a state dict of the model's parameter names (<c>eigenvector_i.safetensors</c>, its
    /// eigenvalue and measured residual in the metadata), atomically; returns the paths.
    /// </summary>
    public static string[] WriteEigenvectors(Module model, Report report, string dir, string kind, string loss, string mode, string curvature = "hessian")
    {
        Directory.CreateDirectory(dir);
        var named = model.NamedParameters();
        var shapes = named.Select(p => p.Parameter.Shape).ToArray();
        var paths = new string[report.Eigenvectors.Length];
        for (int i = 0; i < paths.Length; i++)
        {
            var parts = Vectors.Unflatten(report.Eigenvectors[i], shapes);
            var tensors = named.Select((p, j) => (p.Name, parts[j].To(CpuDevice.Instance).Copy())).ToArray();
            paths[i] = Path.Combine(dir, $"eigenvector_{i}.safetensors");
            Safetensors.Write(paths[i], tensors, new Dictionary<string, string>
            {
                ["eigenvalue"] = report.TopEigenvalues[i].ToString("R", CultureInfo.InvariantCulture),
                ["residual"] = report.Residuals[i].ToString("R", CultureInfo.InvariantCulture),
                ["index"] = i.ToString(CultureInfo.InvariantCulture),
                ["model"] = kind,
                ["loss"] = loss,
                ["mode"] = mode,
                ["operator"] = curvature,
                ["norm"] = "unit over all parameters",
            });
        }
        return paths;
    }

    /// <summary>The Hessian-vector products the verb will make: top-k Lanczos, its residual checks, the other SLQ probes and the Rayleigh quotient.</summary>
    public static int PlannedProducts(int topk, int iterations, int probes) => iterations + topk + (probes - 1) * iterations + 1;

    /// <summary>
    /// The operator, passing products through; after <see cref="Arm"/>(z) its next product, of z/‖z‖ (a Lanczos run's
    /// first), also gives each chosen block's Hutchinson sample z_b·(Hz)_b = ‖z‖²·q_b·(Hq)_b, one row per armed probe.
    /// </summary>
    private sealed class BlockProbes(ILinearOperator inner, Shape[] shapes, int[] blocks) : ILinearOperator
    {
        private double armed;
        public List<double[]> Samples { get; } = [];
        public long Dimension => inner.Dimension;
        public DType DType => inner.DType;
        public Device Device => inner.Device;
        public void Arm(NdArray z) => armed = blocks.Length == 0 ? 0 : z.Dot(z);
        public NdArray Apply(NdArray v)
        {
            var product = inner.Apply(v);
            if (armed > 0)
            {
                var q = Vectors.Unflatten(v, shapes);
                var hq = Vectors.Unflatten(product, shapes);
                Samples.Add(blocks.Select(b => armed * q[b].Dot(hq[b])).ToArray());
                armed = 0;
            }
            return product;
        }
    }

    /// <summary>Tells <c>count</c> after every product (progress).</summary>
    private sealed class CountingOperator(ILinearOperator inner, Action<long>? count) : ILinearOperator
    {
        private long done;
        public long Dimension => inner.Dimension;
        public DType DType => inner.DType;
        public Device Device => inner.Device;
        public NdArray Apply(NdArray v)
        {
            var r = inner.Apply(v);
            count?.Invoke(++done);
            return r;
        }
    }

    private static string G(double v) => v.ToString("G6", CultureInfo.InvariantCulture);

    private static void Print(TextWriter o, Report r, string loss, string mode)
    {
        o.WriteLine($"spectrum: {r.Parameters:N0} parameters, {r.Examples} examples, loss {loss} ({mode} mode), {r.HessianProducts} Hessian-vector products, {Parallelism.MaxThreads} threads, {r.Seconds:0.0} s");
        o.WriteLine();
        o.WriteLine("| quantity | value |");
        o.WriteLine("|---|---|");
        o.WriteLine($"| loss | {G(r.Loss)} |");
        o.WriteLine($"| gradient norm | {G(r.GradNorm)} |");
        for (int i = 0; i < r.TopEigenvalues.Length; i++) o.WriteLine($"| λ{i + 1} (relative residual ‖Hy − λy‖/|λ|) | {G(r.TopEigenvalues[i])} ({r.Residuals[i]:0.0e+00}) |");
        o.WriteLine($"| trace (Hutchinson, the density's probes) | {G(r.Trace)} ± {G(r.TraceStderr)} |");
        if (r.TraceComparison is { } c)
        {
            o.WriteLine($"| trace (Hutchinson, {c.Hutchinson.Probes} products) | {G(c.Hutchinson.Value)} ± {G(c.Hutchinson.StandardError)} |");
            o.WriteLine($"| trace (Hutch++, {c.HutchPlusPlus.Probes} products) | {G(c.HutchPlusPlus.Value)} ± {G(c.HutchPlusPlus.StandardError)} |");
        }
        o.WriteLine($"| Rayleigh quotient along 1/√n | {G(r.RayleighOnes)} |");
        if (r.PerLayer.Count == 0) return;
        o.WriteLine();
        o.WriteLine("| parameter | size | top eigenvalues of its block | Lanczos steps | trace of its block (Hutchinson) |");
        o.WriteLine("|---|---|---|---|---|");
        foreach (var l in r.PerLayer)
            o.WriteLine($"| {l.Name} | {l.Parameters:N0} | {string.Join(", ", l.TopEigenvalues.Select(G))} | {l.Iterations} | {G(l.Trace)} ± {G(l.TraceStderr)} |");
    }

    /// <summary>The JSON document (keys fixed by the issue that asked for the verb).</summary>
    public static string ToJson(Report r, string model, string loss, string mode, int iterations, int probes, IReadOnlyList<string>? eigenvectorFiles = null,
        string curvature = "hessian") => JsonSerializer.Serialize(new Dictionary<string, object?>
    {
        ["model"] = model,
        ["operator"] = curvature,
        ["loss_kind"] = loss,
        ["mode"] = mode,
        ["parameters"] = r.Parameters,
        ["examples"] = r.Examples,
        ["iterations"] = iterations,
        ["probes"] = probes,
        ["hessian_products"] = r.HessianProducts,
        ["seconds"] = r.Seconds,
        ["loss"] = r.Loss,
        ["grad_norm"] = r.GradNorm,
        ["top_eigenvalues"] = r.TopEigenvalues,
        ["residuals"] = r.Residuals,
        ["residuals_kind"] = "relative, measured: ||H y - lambda y|| / |lambda| for the unit Ritz vector y",
        ["density_sigma"] = r.Density.Sigma,
        ["trace"] = r.Trace,
        ["trace_stderr"] = r.TraceStderr,
        ["rayleigh_ones"] = r.RayleighOnes,
        ["density"] = new Dictionary<string, double[]> { ["grid"] = r.Density.Grid, ["values"] = r.Density.Density },
        ["trace_comparison"] = r.TraceComparison is not { } c ? null : new Dictionary<string, object>
        {
            ["budget"] = c.HutchPlusPlus.Probes,
            ["hutchinson"] = new Dictionary<string, double> { ["trace"] = c.Hutchinson.Value, ["stderr"] = c.Hutchinson.StandardError },
            ["hutch++"] = new Dictionary<string, double> { ["trace"] = c.HutchPlusPlus.Value, ["stderr"] = c.HutchPlusPlus.StandardError },
        },
        ["per_layer"] = r.PerLayer.Count == 0 ? null : r.PerLayer.Select(l => new Dictionary<string, object>
        {
            ["name"] = l.Name,
            ["parameters"] = l.Parameters,
            ["top_eigenvalues"] = l.TopEigenvalues,
            ["trace"] = l.Trace,
            ["trace_stderr"] = l.TraceStderr,
            ["iterations"] = l.Iterations,
        }).ToArray(),
        ["eigenvector_files"] = eigenvectorFiles is { Count: > 0 } ? eigenvectorFiles : null,
    }, new JsonSerializerOptions { WriteIndented = true, DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull });

    private static void PlotDensity(Report r, string path, int probes, int iterations)
    {
        var plt = new Plot();
        // Log density only where it is within six decades of the peak: below that the Gaussian tails are the
        // broadening's, not the spectrum's, and a clamp would draw them as a flat floor that looks like data.
        double floor = r.Density.Density.Max() * 1e-6;
        bool labeled = false;
        for (int i = 0; i < r.Density.Grid.Length;)
        {
            if (!(r.Density.Density[i] > floor)) { i++; continue; }
            int j = i;
            while (j < r.Density.Grid.Length && r.Density.Density[j] > floor) j++;
            var segment = plt.Add.ScatterLine(r.Density.Grid[i..j], r.Density.Density[i..j].Select(Math.Log10).ToArray());
            segment.Color = Colors.C0;
            if (!labeled) { segment.LegendText = "SLQ density (shown down to 10⁻⁶ of its peak)"; labeled = true; }
            i = j;
        }
        foreach (var (lambda, i) in r.TopEigenvalues.Select((l, i) => (l, i)))
        {
            var v = plt.Add.VerticalLine(lambda);
            v.LinePattern = LinePattern.Dotted;
            v.Color = Colors.DarkRed;
            if (i == 0) v.LegendText = $"top {r.TopEigenvalues.Length} eigenvalues (Lanczos)";
        }
        plt.Title($"Hessian spectral density: {probes} probes × {iterations} Lanczos steps, Gaussian broadening σ = {r.Density.Sigma:G3}");
        plt.XLabel("eigenvalue");
        plt.YLabel("log₁₀ density");
        plt.ShowLegend(Edge.Bottom);
        AtomicFile.WriteAllBytes(path, plt.GetImageBytes(900, 550, ImageFormat.Png));
    }
}
