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

        var cmd = new Command("spectrum", "Hessian spectrum of a model's loss on a batch: top eigenvalues, trace, density");
        foreach (var o in new Option[] { model, weights, batch, loss, mode, topk, iters, probes, chunk, activation, outDir, heads }) cmd.Options.Add(o);
        common.AddTo(cmd);
        cmd.SetAction(r =>
        {
            var device = common.Apply(r, output);
            string weightsPath = r.GetValue(weights)!, batchPath = r.GetValue(batch)!;
            var (m, file) = ModelFiles.Load(r.GetValue(model), weightsPath, r.GetValue(activation), r.GetValue(heads));
            string kind = r.GetValue(model) ?? ModelFiles.KindOf(file)!;
            if (ModelFiles.WidenedNote(file, weightsPath) is { } note) output.WriteLine(note);
            string lossName = ModelFiles.LossOf(r.GetValue(loss), file, kind);
            var read = BatchFile.Read(batchPath);
            ModelFiles.CheckBatch(m, read, batchPath);
            m.To(device);
            var data = new Dataset(read.Inputs.To(device), read.Labels.To(device));
            Report report = null!;
            int planned = PlannedProducts(r.GetValue(topk), r.GetValue(iters), r.GetValue(probes));
            output.WriteLine($"spectrum: {m.ParameterCount():N0} parameters, {data.Count} examples; {planned} Hessian-vector products planned");
            ProgressDisplay.Run(output, [("spectrum", planned)], tasks =>
                report = Run(m, data, lossName, r.GetValue(mode) == "train", r.GetValue(topk), r.GetValue(iters), r.GetValue(probes),
                    r.GetValue(chunk), new RandomGenerator(r.GetValue(common.Seed)), done => tasks[0].Report((int)Math.Min(done, planned), $"{done} HVPs")));
            Print(output, report, lossName, r.GetValue(mode)!);
            var json = ToJson(report, kind, lossName, r.GetValue(mode)!, r.GetValue(iters), r.GetValue(probes));
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

    /// <summary>Computes the report for a model on a batch.</summary>
    public static Report Run(Module model, Dataset data, string loss, bool training, int topk, int iterations, int probes, int chunk, RandomGenerator rng,
        Action<long>? products = null)
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
        var hessian = new HessianOperator(terms, model.Parameters().Select(p => p.Value).ToArray());
        var op = new CountingOperator(hessian, products);
        var (value, grad) = hessian.LossAndGradient();

        var first = Lanczos.Run(op, iterations, k: topk, which: Which.LargestAlgebraic,
            start: rng.Rademacher(new Shape((int)op.Dimension), op.DType, op.Device), vectors: true);
        // The residuals reported are measured, ‖Hy − θy‖ / |θ| with one more product per pair: the tridiagonal's
        // own estimate β_m·|s_m| is exact only in exact arithmetic and looks impossibly good (1e-17) on a float32 operator.
        var residuals = first.Values.Select((theta, i) =>
        {
            var y = first.Vectors![i];
            var r = op.Apply(y) - y * theta;
            return Math.Sqrt(r.Dot(r)) / Math.Max(Math.Abs(theta), double.Epsilon) / Math.Sqrt(y.Dot(y));
        }).ToArray();
        var runs = new List<LanczosResult> { first };
        runs.AddRange(StochasticLanczosQuadrature.Probe(op, iterations, probes - 1, rng));
        var trace = Hutchinson.TraceFromLanczos(runs, op.Dimension);
        var density = StochasticLanczosQuadrature.FromRuns(runs);

        var ones = NdArray.Full(new Shape((int)op.Dimension), 1 / Math.Sqrt(op.Dimension), op.DType, op.Device);
        double rayleigh = ones.Dot(op.Apply(ones));
        return new Report(value, Vectors.Norm(grad), first.Values, residuals, trace.Value, trace.StandardError, rayleigh, density,
            op.Dimension, data.Count, hessian.Products, clock.Elapsed.TotalSeconds);
    }

    /// <summary>The Hessian-vector products the verb will make: top-k Lanczos, its residual checks, the other SLQ probes and the Rayleigh quotient.</summary>
    public static int PlannedProducts(int topk, int iterations, int probes) => iterations + topk + (probes - 1) * iterations + 1;

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
        ["residuals_kind"] = "relative, measured: ||H y - lambda y|| / |lambda| for the unit Ritz vector y",
        ["density_sigma"] = r.Density.Sigma,
        ["trace"] = r.Trace,
        ["trace_stderr"] = r.TraceStderr,
        ["rayleigh_ones"] = r.RayleighOnes,
        ["density"] = new Dictionary<string, double[]> { ["grid"] = r.Density.Grid, ["values"] = r.Density.Density },
    }, new JsonSerializerOptions { WriteIndented = true });

    private static void PlotDensity(Report r, string path, int probes, int iterations)
    {
        var plt = new Plot();
        // Log density only where it is within six decades of the peak: below that the Gaussian tails are the
        // broadening's, not the spectrum's, and a clamp would draw them as a flat floor that looks like data.
        double floor = r.Density.Density.Max() * 1e-6;
        bool labelled = false;
        for (int i = 0; i < r.Density.Grid.Length;)
        {
            if (!(r.Density.Density[i] > floor)) { i++; continue; }
            int j = i;
            while (j < r.Density.Grid.Length && r.Density.Density[j] > floor) j++;
            var segment = plt.Add.ScatterLine(r.Density.Grid[i..j], r.Density.Density[i..j].Select(Math.Log10).ToArray());
            segment.Color = Colors.C0;
            if (!labelled) { segment.LegendText = "SLQ density (shown down to 10⁻⁶ of its peak)"; labelled = true; }
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
