using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Curvature.Autodiff;
using Curvature.Engine;
using Curvature.Kernels;
using Curvature.Models;
using Curvature.Models.Data;
using Curvature.Spectral;
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
    public sealed record Report(double Loss, double GradNorm, double[] TopEigenvalues, double[] Residuals, double Trace, double TraceStderr,
        double RayleighOnes, SpectralDensity Density, long Parameters, int Examples, int HessianProducts, double Seconds);

    internal static Command Command(TextWriter output)
    {
        var common = new Cli.CommonOptions();
        var model = new Option<string?>("--model") { Description = $"Model kind ({string.Join(", ", ModelFiles.Names)}; default: the kind the weights file records)" };
        model.AcceptOnlyFromAmong(ModelFiles.Names);
        var weights = new Option<string>("--weights") { Description = "Weights (safetensors, PyTorch state_dict names)", Required = true };
        var batch = new Option<string>("--batch") { Description = "Batch file (safetensors with 'inputs' and 'targets')", Required = true };
        var loss = new Option<string?>("--loss") { Description = "mse or ce (default: mse for mlp, ce for resnet20 and gpt)" };
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

        var cmd = new Command("spectrum", "Hessian spectrum of a model's loss on a batch: top eigenvalues, trace, density");
        foreach (var o in new Option[] { model, weights, batch, loss, mode, topk, iters, probes, chunk, activation, outDir, heads }) cmd.Options.Add(o);
        common.AddTo(cmd);
        cmd.SetAction(r =>
        {
            var device = common.Apply(r, output);
            string weightsPath = r.GetValue(weights)!, batchPath = r.GetValue(batch)!;
            var (m, file) = ModelFiles.Load(r.GetValue(model), weightsPath, r.GetValue(activation), r.GetValue(heads));
            string kind = r.GetValue(model) ?? ModelFiles.KindOf(file)!;
            string lossName = r.GetValue(loss) ?? (kind == "mlp" ? "mse" : "ce");
            var read = BatchFile.Read(batchPath);
            ModelFiles.CheckBatch(m, read, batchPath);
            m.To(device);
            var data = new Dataset(read.Inputs.To(device), read.Labels.To(device));
            var report = Run(m, data, lossName, r.GetValue(mode) == "train", r.GetValue(topk), r.GetValue(iters), r.GetValue(probes),
                r.GetValue(chunk), new RandomGenerator(r.GetValue(common.Seed)));
            Print(output, report, lossName, r.GetValue(mode)!);
            var json = ToJson(report, kind, lossName, r.GetValue(mode)!, r.GetValue(iters), r.GetValue(probes));
            if (r.GetValue(common.Json) is { } path) AtomicFile.WriteAllText(path, json);
            if (r.GetValue(outDir) is { } dir)
            {
                Directory.CreateDirectory(dir);
                AtomicFile.WriteAllText(Path.Combine(dir, "spectrum.json"), json);
                PlotDensity(report, Path.Combine(dir, "density.png"));
                output.WriteLine($"wrote {Path.Combine(dir, "spectrum.json")}, {Path.Combine(dir, "density.png")}");
            }
            return 0;
        });
        return cmd;
    }

    /// <summary>Computes the report for a model on a batch.</summary>
    public static Report Run(Module model, Dataset data, string loss, bool training, int topk, int iterations, int probes, int chunk, RandomGenerator rng)
    {
        var clock = Stopwatch.StartNew();
        if (model.Parameters().Count == 0) throw new LabException("the model has no parameters.");
        var dtype = model.Parameters()[0].Value.DType;
        var inputs = data.Inputs.DType == dtype || data.Inputs.DType == DType.Int64 ? data.Inputs : data.Inputs.Cast(dtype);
        var terms = new List<(Func<Tensor[], Tensor>, double)>();
        for (int start = 0; start < data.Count; start += chunk)
        {
            int count = Math.Min(chunk, data.Count - start);
            terms.Add((Loss.Function(model, loss, inputs.Rows(start, count), data.Labels.Rows(start, count), training), count / (double)data.Count));
        }
        var op = new HessianOperator(terms, model.Parameters().Select(p => p.Value).ToArray());
        var (value, grad) = op.LossAndGradient();

        var first = Lanczos.Run(op, iterations, k: topk, which: Which.LargestAlgebraic,
            start: rng.Rademacher(new Shape((int)op.Dimension), op.DType, op.Device));
        var runs = new List<LanczosResult> { first };
        runs.AddRange(StochasticLanczosQuadrature.Probe(op, iterations, probes - 1, rng));
        var trace = Hutchinson.TraceFromLanczos(runs, op.Dimension);
        var density = StochasticLanczosQuadrature.FromRuns(runs);

        var ones = NdArray.Full(new Shape((int)op.Dimension), 1 / Math.Sqrt(op.Dimension), op.DType, op.Device);
        double rayleigh = ones.Dot(op.Apply(ones));
        return new Report(value, Vectors.Norm(grad), first.Values, first.Residuals, trace.Value, trace.StandardError, rayleigh, density,
            op.Dimension, data.Count, op.Products, clock.Elapsed.TotalSeconds);
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
        for (int i = 0; i < r.TopEigenvalues.Length; i++) o.WriteLine($"| λ{i + 1} (residual) | {G(r.TopEigenvalues[i])} ({r.Residuals[i]:0.0e+00}) |");
        o.WriteLine($"| trace (Hutchinson) | {G(r.Trace)} ± {G(r.TraceStderr)} |");
        o.WriteLine($"| Rayleigh quotient along 1/√n | {G(r.RayleighOnes)} |");
    }

    /// <summary>The JSON document (keys fixed by the issue that asked for the verb).</summary>
    public static string ToJson(Report r, string model, string loss, string mode, int iterations, int probes) => JsonSerializer.Serialize(new Dictionary<string, object>
    {
        ["model"] = model,
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
        ["trace"] = r.Trace,
        ["trace_stderr"] = r.TraceStderr,
        ["rayleigh_ones"] = r.RayleighOnes,
        ["density"] = new Dictionary<string, double[]> { ["grid"] = r.Density.Grid, ["values"] = r.Density.Density },
    }, new JsonSerializerOptions { WriteIndented = true });

    private static void PlotDensity(Report r, string path)
    {
        var plt = new Plot();
        var floor = 1e-8;
        var logDensity = r.Density.Density.Select(d => Math.Log10(Math.Max(d, floor))).ToArray();
        plt.Add.ScatterLine(r.Density.Grid, logDensity).LegendText = "SLQ density";
        foreach (var (lambda, i) in r.TopEigenvalues.Select((l, i) => (l, i)))
        {
            var v = plt.Add.VerticalLine(lambda);
            v.LinePattern = LinePattern.Dotted;
            v.Color = Colors.DarkRed;
            if (i == 0) v.LegendText = $"top {r.TopEigenvalues.Length} eigenvalues (Lanczos)";
        }
        plt.Title("Hessian spectral density");
        plt.XLabel("eigenvalue");
        plt.YLabel("log₁₀ density");
        plt.ShowLegend(Alignment.UpperRight);
        AtomicFile.WriteAllBytes(path, plt.GetImageBytes(800, 500, ImageFormat.Png));
    }
}
