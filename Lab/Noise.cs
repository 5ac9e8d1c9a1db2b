using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Curvature.Engine;
using Curvature.Kernels;
using Curvature.Models;
using Curvature.Models.Data;
using Curvature.Spectral;
using Curvature.Training.Distributed;

namespace Curvature.Lab;

/// <summary>
/// <c>Lab noise</c>: the gradient noise of a batch at given weights, measured exactly (<see cref="GradientNoise"/>):
/// the loss and ‖ḡ‖, tr Σ (exact from per-example gradients up to <c>--exact-limit</c> examples, else Hutchinson
/// with its standard error), the noise scale tr Σ/‖ḡ‖², the top-k Hessian eigenvalues and the noise along each
/// eigenvector vₖᵀΣvₖ (one JVP each), the gradient sharpness ḡᵀHḡ/‖ḡ‖² and the batch sharpness over minibatches.
/// </summary>
public static class Noise
{
    /// <summary>What the verb measured.</summary>
    public sealed record Report(double Loss, double GradientNorm, Estimate NoiseTrace, string TraceMethod, double NoiseScale, double[] TopEigenvalues,
        double[] NoiseAlongTop, double GradientSharpness, Estimate BatchSharpness, Estimate BatchSharpnessRatioOfMeans, int Examples, long Parameters, bool Coupled, double Seconds);

    internal static Command Command(TextWriter output0)
    {
        var common = new Cli.CommonOptions();
        var distributed = new DistributedOptions();
        var model = new Option<string?>("--model") { Description = $"Model kind ({string.Join(", ", ModelFiles.Names)}; default: the kind the weights file records)" };
        model.AcceptOnlyFromAmong(ModelFiles.Names);
        var weights = new Option<string>("--weights") { Description = "Weights (safetensors, PyTorch state_dict names)", Required = true };
        var batch = new Option<string>("--batch") { Description = "Batch file (safetensors with 'inputs' and 'targets'; Lab batch writes one)", Required = true };
        var loss = new Option<string?>("--loss") { Description = "mse or ce (default: the loss the weights file records, else mse for mlp, ce otherwise)" };
        loss.AcceptOnlyFromAmong(Loss.Names);
        var mode = Options.OneOf("--mode", "Loss in train mode (BatchNorm on the batch's statistics: the examples are coupled, and exactly so here) or eval mode", "train", "train", "eval");
        var topk = Options.Int("--topk", "Top Hessian eigenpairs whose noise is measured", 5, max: 100);
        var iters = Options.Int("--iters", "Lanczos iterations for the eigenpairs", 40, max: 100_000);
        var minibatch = Options.Int("--minibatch", "Minibatch size b of the batch sharpness (default: 32, or the batch if smaller)", 0, min: 0, max: 1_000_000);
        var samples = Options.Int("--samples", "Minibatches S drawn for the batch sharpness", 20, max: 100_000);
        var exactLimit = Options.Int("--exact-limit", "Batches up to this many examples get the exact tr Σ; larger ones Hutchinson's estimate", 2000, min: 0, max: 1_000_000);
        var probes = Options.Int("--probes", "Hutchinson probes for tr Σ beyond --exact-limit", 50, min: 2, max: 100_000);
        var cmd = new Command("noise", "Gradient noise of a batch: tr Σ, noise scale, noise along the top eigenvectors, gradient and batch sharpness");
        foreach (var o in new Option[] { model, weights, batch, loss, mode, topk, iters, minibatch, samples, exactLimit, probes }) cmd.Options.Add(o);
        common.AddTo(cmd);
        distributed.AddTo(cmd);
        cmd.SetAction(r =>
        {
            var output = output0;
            var (device, ranks) = distributed.Start(r, common, ref output);
            string weightsPath = r.GetValue(weights)!, batchPath = r.GetValue(batch)!;
            var (m, file) = ModelFiles.Load(r.GetValue(model), weightsPath, null);
            string kind = r.GetValue(model) ?? ModelFiles.KindOf(file)!;
            string lossName = ModelFiles.LossOf(r.GetValue(loss), file, kind);
            var data = BatchFile.Read(batchPath);
            ModelFiles.CheckBatch(m, data, batchPath);
            if (data.Count < 2) throw new LabException($"{batchPath}: {data.Count} example has no gradient noise; give a batch of at least 2.");
            int b = r.GetValue(minibatch) is > 0 and var given ? given : Math.Min(32, data.Count);
            if (b > data.Count) throw new UsageException($"--minibatch {b} is larger than the batch's {data.Count} examples ({batchPath}).");
            if (ranks.Size > 1 && r.GetValue(mode) == "train" && m.NamedBuffers().Any(t => t.Name.EndsWith("running_mean", StringComparison.Ordinal)))
                throw new UsageException("noise --distributed: training-mode BatchNorm couples every example's gradient to the whole batch, which a split over the ranks does not see; give --mode eval, or run it in one process.");
            m.To(device);
            var report = Run(m, new Dataset(data.Inputs.To(device), data.Labels.To(device)), lossName, r.GetValue(mode) == "train", r.GetValue(topk), r.GetValue(iters),
                b, r.GetValue(samples), r.GetValue(exactLimit), r.GetValue(probes), new RandomGenerator(r.GetValue(common.Seed)), output, ranks);
            Print(output, report, lossName, r.GetValue(mode)!, b);
            if (ranks.Rank == 0 && r.GetValue(common.Json) is { } path) AtomicFile.WriteAllText(path, ToJson(report, kind, lossName, r.GetValue(mode)!, b, r.GetValue(samples)));
            return 0;
        });
        return cmd;
    }

    /// <summary>
    /// Measures the report (phases are announced on <paramref name="output"/>). Over several <paramref name="ranks"/>
    /// each takes its shard of the batch: per-example quantities are computed where the example is, sums and the
    /// Hessian's products are all-reduced, and every figure is the whole batch's.
    /// </summary>
    public static Report Run(Module model, Dataset data, string loss, bool training, int topk, int iterations, int minibatch, int samples, int exactLimit, int probes,
        RandomGenerator rng, TextWriter output, ICommunicator? ranks = null)
    {
        ranks ??= SingleProcess.Instance;
        var clock = Stopwatch.StartNew();
        var dtype = model.Parameters()[0].Data.DType;
        var (shardInputs, share) = DataParallel.ShardRows(data.Inputs, ranks);
        var shardLabels = DataParallel.ShardRows(data.Labels, ranks).Rows;
        var inputs = shardInputs.DType == dtype || shardInputs.DType == DType.Int64 ? shardInputs : shardInputs.Cast(dtype);
        var noise = new GradientNoise(model, loss, inputs, shardLabels, training, ranks.Size > 1 ? new ExampleShards(ranks, data.Count) : null);
        var (value, g) = noise.LossAndGradient();
        double gg = ParameterVector.Dot(g, g);
        output.WriteLine($"noise: {data.Count} examples{(noise.Coupled ? " (coupled by training-mode BatchNorm)" : "")}; tr Σ {(data.Count <= exactLimit ? $"exact ({data.Count} per-example gradients)" : $"by Hutchinson ({probes} probes)")}");
        var trace = data.Count <= exactLimit ? new Estimate(noise.TraceExact(g), 0, 0) : noise.TraceHutchinson(probes, rng);
        output.WriteLine($"noise: top {topk} eigenpairs (Lanczos, {iterations} iterations)");
        ILinearOperator op = new HessianOperator(Loss.Function(model, loss, inputs, shardLabels, training), ParameterVector.Of(model));
        if (ranks.Size > 1) op = new DistributedOperator(op, share, ranks);
        var top = Lanczos.Run(op, iterations, k: topk, which: Which.LargestAlgebraic, start: rng.Rademacher(new Shape((int)op.Dimension), op.DType, op.Device), vectors: true);
        var shapes = model.Parameters().Select(p => p.Shape).ToArray();
        var along = top.Vectors!.Select(v => noise.VarianceAlong(Vectors.Unflatten(Vectors.Normalize(v), shapes))).ToArray();
        output.WriteLine($"noise: gradient sharpness, and batch sharpness over {samples} minibatches of {minibatch}");
        double gradientSharpness = noise.GradientSharpness();
        var both = noise.BatchSharpnessBoth(minibatch, samples, rng);
        var batchSharpness = both.MeanOfRatios;
        return new Report(value, Math.Sqrt(gg), trace, data.Count <= exactLimit ? "exact" : "hutchinson", trace.Value / gg, top.Values, along, gradientSharpness, batchSharpness,
            both.RatioOfMeans, data.Count, model.ParameterCount(), noise.Coupled, clock.Elapsed.TotalSeconds);
    }

    private static string G(double v) => v.ToString("G6", CultureInfo.InvariantCulture);

    private static void Print(TextWriter o, Report r, string loss, string mode, int minibatch)
    {
        o.WriteLine($"noise: {r.Parameters:N0} parameters, {r.Examples} examples, loss {loss} ({mode} mode), {Parallelism.MaxThreads} threads, {r.Seconds:0.0} s");
        o.WriteLine();
        o.WriteLine("| quantity | value |");
        o.WriteLine("|---|---|");
        o.WriteLine($"| loss | {G(r.Loss)} |");
        o.WriteLine($"| gradient norm ‖ḡ‖ | {G(r.GradientNorm)} |");
        o.WriteLine($"| noise trace tr Σ ({r.TraceMethod}) | {G(r.NoiseTrace.Value)}{(r.TraceMethod == "exact" ? "" : $" ± {G(r.NoiseTrace.StandardError)}")} |");
        o.WriteLine($"| noise scale tr Σ / ‖ḡ‖² | {G(r.NoiseScale)} |");
        for (int i = 0; i < r.TopEigenvalues.Length; i++) o.WriteLine($"| λ{i + 1}, noise along v{i + 1} (vᵀΣv) | {G(r.TopEigenvalues[i])}, {G(r.NoiseAlongTop[i])} |");
        o.WriteLine($"| gradient sharpness ḡᵀHḡ / ‖ḡ‖² | {G(r.GradientSharpness)} |");
        o.WriteLine($"| batch sharpness (b = {minibatch}, {r.BatchSharpness.Probes} minibatches): mean of g_BᵀH_Bg_B/‖g_B‖² | {G(r.BatchSharpness.Value)}{(double.IsFinite(r.BatchSharpness.StandardError) ? $" ± {G(r.BatchSharpness.StandardError)}" : "")} |");
        o.WriteLine($"| batch sharpness, ratio of means E[g_BᵀH_Bg_B]/E[‖g_B‖²] | {G(r.BatchSharpnessRatioOfMeans.Value)}{(double.IsFinite(r.BatchSharpnessRatioOfMeans.StandardError) ? $" ± {G(r.BatchSharpnessRatioOfMeans.StandardError)} (jackknife)" : "")} |");
    }

    /// <summary>The JSON document (the names the issue fixed).</summary>
    public static string ToJson(Report r, string model, string loss, string mode, int minibatch, int samples) => JsonSerializer.Serialize(new Dictionary<string, object?>
    {
        ["model"] = model,
        ["loss_kind"] = loss,
        ["mode"] = mode,
        ["examples"] = r.Examples,
        ["parameters"] = r.Parameters,
        ["coupled"] = r.Coupled,
        ["seconds"] = r.Seconds,
        ["loss"] = r.Loss,
        ["gradient_norm"] = r.GradientNorm,
        ["noise_trace"] = r.NoiseTrace.Value,
        ["noise_trace_stderr"] = r.TraceMethod == "exact" ? 0.0 : r.NoiseTrace.StandardError,
        ["noise_trace_method"] = r.TraceMethod,
        ["noise_scale"] = r.NoiseScale,
        ["top_eigenvalues"] = r.TopEigenvalues,
        ["noise_along_top"] = r.NoiseAlongTop,
        ["gradient_sharpness"] = r.GradientSharpness,
        ["batch_sharpness"] = r.BatchSharpness.Value,
        ["batch_sharpness_stderr"] = double.IsFinite(r.BatchSharpness.StandardError) ? r.BatchSharpness.StandardError : null,
        ["batch_sharpness_ratio_of_means"] = r.BatchSharpnessRatioOfMeans.Value,
        ["batch_sharpness_ratio_of_means_stderr"] = double.IsFinite(r.BatchSharpnessRatioOfMeans.StandardError) ? r.BatchSharpnessRatioOfMeans.StandardError : null,
        ["minibatch"] = minibatch,
        ["samples"] = samples,
    }, new JsonSerializerOptions { WriteIndented = true });
}
