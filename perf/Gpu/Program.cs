using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Curvature.Autodiff;
using Curvature.Engine;
using Curvature.Models;
using Curvature.Optimizers;
using Curvature.Spectral;
using Curvature.Tests.Engine;

// perf/Gpu: one command that checks the GPU backend and times it against PyTorch on the H100
// (perf/anchors/torch_h100.json, embedded). First the device conformance suite (the tests' own checks, linked in:
// every op and three models' HVPs against the CPU device), then SGEMM at 4096 and 8192 (its result checked
// against float64 on sampled entries), then forward, gradient, HVP, train step and 20 Lanczos iterations of the
// MLP (full batch 5000), ResNet-20 (batch 128) and the GPT (6 layers, d 384, T 256, batch 64). Every timing is
// the median of --repeats runs after a warm-up, each ended by a device synchronization. Exit code 1 when a check
// fails (the timings still run and print).
//   Gpu [--device auto|cuda|opencl|ilgpu-cpu|cpu] [--only conformance,sgemm,mlp,resnet,gpt] [--repeats N] [--quick]
// --quick shrinks every size (a smoke test that runs on ILGPU's CPU accelerator; no PyTorch column then).
namespace Curvature.Gpu;

internal static class Program
{
    private const string Usage = """
        usage: Gpu [--device auto|cuda[:N]|opencl[:N]|ilgpu-cpu|cpu] [--only conformance,sgemm,mlp,resnet,gpt] [--repeats N] [--quick]
          --device   where to run (default auto: CUDA when present)
          --only     the parts to run, comma-separated (default all)
          --repeats  timed runs per figure after a warm-up (default 10)
          --quick    shrink every size: a smoke test that runs on ILGPU's CPU accelerator (no PyTorch column)
        Exit 0 when every check passes, 1 when one fails, 2 for bad usage.
        """;

    private static readonly string[] Parts = ["conformance", "sgemm", "mlp", "resnet", "gpt"];

    /// <summary>Checks the arguments before any work: every option known, every value well-formed; null when they are.</summary>
    internal static string? UsageProblem(string[] args)
    {
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--quick": break;
                case "--device" or "--only" or "--repeats" when i + 1 >= args.Length || args[i + 1].StartsWith("--", StringComparison.Ordinal):
                    return $"{args[i]} needs a value";
                case "--device": i++; if (!DeviceCatalog.IsDeviceName(args[i])) return $"--device: '{args[i]}' is not a device name; expected one of {DeviceCatalog.Choices}"; break;
                case "--only":
                    i++;
                    var unknown = args[i].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Where(p => !Parts.Contains(p)).ToArray();
                    if (unknown.Length > 0) return $"--only: unknown part {string.Join(", ", unknown)}; expected some of {string.Join(",", Parts)}";
                    break;
                case "--repeats":
                    i++;
                    if (!int.TryParse(args[i], NumberStyles.None, CultureInfo.InvariantCulture, out int n) || n < 1 || n > 10_000) return $"--repeats: '{args[i]}' is not a whole number from 1 to 10000";
                    break;
                default: return $"unknown argument '{args[i]}'";
            }
        }
        return null;
    }

    private static int Main(string[] args)
    {
        if (args.Any(a => a is "--help" or "-h" or "-?"))
        {
            Console.WriteLine(Usage);
            return 0;
        }
        if (UsageProblem(args) is { } problem)
        {
            Console.Error.WriteLine($"error: {problem}");
            Console.Error.WriteLine(Usage);
            return 2;
        }
        string deviceName = Arg(args, "--device") ?? "auto";
        var only = (Arg(args, "--only") ?? string.Join(",", Parts)).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToHashSet();
        int repeats = int.Parse(Arg(args, "--repeats") ?? "10", CultureInfo.InvariantCulture);
        bool quick = args.Contains("--quick");
        Device device;
        try { device = DeviceCatalog.Resolve(deviceName, out var choice); Console.WriteLine(choice); }
        catch (ArgumentException e) { Console.Error.WriteLine($"error: {e.Message}"); return 1; }

        using var anchorStream = typeof(Program).Assembly.GetManifestResourceStream("torch_h100.json")!;
        using var anchors = JsonDocument.Parse(anchorStream);
        var table = new List<string[]>();
        var h = new Harness(device, repeats);
        int failed = 0;

        if (only.Contains("conformance"))
            failed += Conformance(device, table);

        if (only.Contains("sgemm"))
            foreach (int n in quick ? [64, 128] : new[] { 4096, 8192 })
            {
                var rng = new RandomGenerator(0);
                var a = rng.Normal(new Shape(n, n), device: device);
                var b = rng.Normal(new Shape(n, n), device: device);
                double ms = h.Time(() => a.MatMul(b));
                double tflops = 2.0 * n * n * n / (ms * 1e-3) / 1e12;
                double? torch = quick ? null : Number(anchors.RootElement, $"sgemm_{n}_fp32_tflops");
                table.Add([$"SGEMM {n}, fp32", "TFLOP/s", F(tflops), F(torch), Ratio(tflops, torch), "≥ 0.5 of cuBLAS at 4096"]);
                double error = ProductError(a, b, a.MatMul(b), samples: 256, new RandomGenerator(1));
                bool right = error <= 1e-4;
                if (!right) failed++;
                table.Add(["", "largest error of 256 sampled entries / Σ|a·b|", error.ToString("0.0E+0", CultureInfo.InvariantCulture), "", "", right ? "≤ 1e-4: right" : "≤ 1e-4: WRONG"]);
                Console.WriteLine($"SGEMM {n}: {ms:F3} ms, {tflops:F3} TFLOP/s, largest sampled error {error:E1} of Σ|a·b|");
            }

        if (only.Contains("mlp"))
        {
            int batch = quick ? 16 : 5000, width = quick ? 16 : 200;
            var rng = new RandomGenerator(0);
            var model = Mlp.Create(rng, width).To(device);
            Model(h, table, anchors.RootElement, quick ? null : "mlp_tanh_fullbatch5k", $"MLP 784-{width}-{width}-10 tanh, MSE, batch {batch}", model, "mse",
                rng.Normal(new Shape(batch, 784)).To(device), rng.Integers(new Shape(batch), 10).To(device));
        }
        if (only.Contains("resnet"))
        {
            int batch = quick ? 2 : 128, side = quick ? 8 : 32;
            var rng = new RandomGenerator(0);
            var model = (quick ? new ResNet(rng, 3, 10, width: 4, blocksPerStage: 1) : ResNet.ResNet20(rng, 3)).To(device);
            Model(h, table, anchors.RootElement, quick ? null : "resnet20_b128", quick ? $"ResNet-8 width 4, 3×8×8, batch {batch}" : $"ResNet-20, 3×32×32, batch {batch}", model, "ce",
                rng.Normal(new Shape(batch, 3, side, side)).To(device), rng.Integers(new Shape(batch), 10).To(device));
        }
        if (only.Contains("gpt"))
        {
            var config = quick ? new GptConfig(Context: 8, Layers: 1, Heads: 2, Width: 16) : new GptConfig();
            int batch = quick ? 2 : 64;
            var rng = new RandomGenerator(0);
            var model = new Gpt(config, rng).To(device);
            Model(h, table, anchors.RootElement, quick ? null : "gpt6L384_T256_b64", $"GPT {config.Layers}L d{config.Width} T{config.Context}, batch {batch}", model, "ce",
                rng.Integers(new Shape(batch, config.Context), 65).To(device), rng.Integers(new Shape(batch, config.Context), 65).To(device));
        }

        Console.WriteLine();
        Console.WriteLine($"| {device.Name} | | engine | PyTorch 2.11 H100 | engine / PyTorch | target |");
        Console.WriteLine("|---|---|---|---|---|---|");
        foreach (var row in table) Console.WriteLine("| " + string.Join(" | ", row) + " |");
        if (device is AcceleratorDevice acc)
            Console.WriteLine($"\nmemory pool: {acc.Pool.Allocated} allocations, {acc.Pool.Reused} reuses, {acc.Pool.BytesInUse / 1048576.0:F0} MiB in use, {acc.Pool.BytesCached / 1048576.0:F0} MiB cached; " +
                $"{acc.Pool.Collections} collections run by the pool (every {acc.Pool.CollectAfterBytes >> 20:N0} MiB handed out), {acc.Pool.CollectionTime.TotalMilliseconds:N0} ms in them");
        if (failed > 0) Console.WriteLine($"\n{failed} check(s) FAILED: see above.");
        return failed > 0 ? 1 : 0;
    }

    /// <summary>
    /// The device conformance suite's checks on <paramref name="device"/>, each reported as it ends (a failure with
    /// the assertion's message); returns the number that failed. The CPU device is the reference, so it has none.
    /// </summary>
    private static int Conformance(Device device, List<string[]> table)
    {
        if (device is not AcceleratorDevice)
        {
            Console.WriteLine("conformance: nothing to check on the CPU device (it is the reference)");
            return 0;
        }
        var checks = DeviceConformanceTests.Checks();
        Console.WriteLine($"conformance on {device.Name}: {checks.Count} checks against the CPU device");
        int failed = 0;
        foreach (var (name, run) in checks)
        {
            var clock = Stopwatch.StartNew();
            try
            {
                run(device.Name);
                Console.WriteLine($"  ok      {name} ({clock.Elapsed.TotalSeconds:F1} s)");
            }
            catch (Exception e)
            {
                failed++;
                Console.WriteLine($"  FAILED  {name} ({clock.Elapsed.TotalSeconds:F1} s): {e.GetType().Name}: {e.Message}");
            }
        }
        table.Add(["device conformance suite", "checks passed", $"{checks.Count - failed} of {checks.Count}", "", "", failed == 0 ? "all" : "all: FAILED"]);
        return failed;
    }

    /// <summary>
    /// The largest |c[i,j] − Σₖ a[i,k]·b[k,j]| over <paramref name="samples"/> random entries, the sum in float64 on
    /// the host, each divided by Σₖ |a[i,k]·b[k,j]| (the scale a float32 sum's rounding error is bounded by), so a
    /// kernel that is fast but wrong shows here.
    /// </summary>
    private static double ProductError(NdArray a, NdArray b, NdArray c, int samples, RandomGenerator rng)
    {
        int m = a.Shape[0], k = a.Shape[1], n = b.Shape[1];
        float[] ha = a.ToArray<float>(), hb = b.ToArray<float>(), hc = c.ToArray<float>();
        long[] rows = rng.Integers(new Shape(samples), m).ToArray<long>(), columns = rng.Integers(new Shape(samples), n).ToArray<long>();
        double worst = 0;
        for (int s = 0; s < samples; s++)
        {
            long i = rows[s], j = columns[s];
            double sum = 0, scale = 0;
            for (int q = 0; q < k; q++)
            {
                double term = (double)ha[i * k + q] * hb[(long)q * n + j];
                sum += term;
                scale += Math.Abs(term);
            }
            worst = Math.Max(worst, Math.Abs(hc[i * n + j] - sum) / Math.Max(scale, double.Epsilon));
        }
        return worst;
    }

    private static void Model(Harness h, List<string[]> table, JsonElement anchors, string? key, string name, Module model, string loss, NdArray x, NdArray y)
    {
        var ps = model.Parameters();
        var w = ps.Select(p => (Tensor)p.Data).ToArray();
        var f = Loss.Function(model, loss, x, y, training: true);
        var v = w.Select(t => (Tensor)new RandomGenerator(1).Normal(t.Shape, dtype: t.DType, device: t.Device)).ToArray();
        var optimizer = new Momentum(1e-6, 0.9);
        int step = 0;
        Console.WriteLine($"{name}: timing forward, gradient, HVP, train step, Lanczos");
        double fwd = h.Time(() => f(w).Data);
        double grad = h.Time(() => Derivatives.ValueAndGrad(f, w).Gradient[^1].Data);
        double hvp = h.Time(() => Derivatives.Hvp(f, w, v).Product[^1].Data);
        NdArray TrainStep()
        {
            var (value, grads) = Derivatives.ValueAndGrad(p => Loss.Of(loss, model.Forward(new Bindings(ps, p, training: true) { UpdateStatistics = true }, x), y), ps.Select(p => (Tensor)p.Data).ToArray());
            optimizer.Step(new StepContext { Step = step++, Loss = value.ToScalar(), Parameters = ps, Gradients = grads.Select(g => g.Data).ToArray() });
            return ps[^1].Data;
        }
        double train = h.Time(TrainStep);
        var op = new HessianOperator(f, ps.Select(p => p.Data).ToArray());
        void Lanczos20() => Lanczos.Run(op, 20, k: 5, rng: new RandomGenerator(2));
        double lanczos = h.Time(() => { Lanczos20(); return ps[0].Data; }, repeats: Math.Max(1, h.Repeats / 5));
        // Each host read waits for the stream: a step should read its loss alone, Lanczos its scalars alone.
        var accelerator = ps[0].Data.Device as AcceleratorDevice;
        HostTransfers stepTransfers, lanczosTransfers;
        long launchesBefore = accelerator?.KernelLaunches ?? 0;
        var perKernelBefore = accelerator?.KernelLaunchesByKernel;
        var productsBefore = accelerator?.GemmMultiplyAdds ?? default;
        using (stepTransfers = HostTransfers.Count()) TrainStep();
        long stepLaunches = (accelerator?.KernelLaunches ?? 0) - launchesBefore;
        var productsAfter = accelerator?.GemmMultiplyAdds ?? default;
        double issuedPerUseful = (double)(productsAfter.Issued - productsBefore.Issued) / Math.Max(1, productsAfter.Useful - productsBefore.Useful);
        // Where a step's launches go: the kernels launched most, with their counts.
        string busiest = accelerator is null ? "" : string.Join(", ", accelerator.KernelLaunchesByKernel
            .Select(k => (k.Key, Count: k.Value - (perKernelBefore!.TryGetValue(k.Key, out long c) ? c : 0)))
            .Where(k => k.Count > 0).OrderByDescending(k => k.Count).Take(4).Select(k => $"{k.Key} {k.Count}"));
        launchesBefore = accelerator?.KernelLaunches ?? 0;
        GC.KeepAlive(Derivatives.Hvp(f, w, v).Product.Select(p => p.Data).ToArray());
        long hvpLaunches = (accelerator?.KernelLaunches ?? 0) - launchesBefore;
        using (lanczosTransfers = HostTransfers.Count()) Lanczos20();
        JsonElement a = default;
        bool has = key is not null && anchors.TryGetProperty(key, out a);
        double? T(string k) => has ? Number(a, k) : null;
        string P = $"{name} ({model.ParameterCount():N0} parameters)";
        table.Add([P, "forward ms", F(fwd), F(T("fwd_ms")), Ratio(fwd, T("fwd_ms")), ""]);
        table.Add(["", "gradient ms", F(grad), F(T("grad_ms")), Ratio(grad, T("grad_ms")), ""]);
        table.Add(["", "HVP ms", F(hvp), F(T("hvp_ms")), Ratio(hvp, T("hvp_ms")), key == "mlp_tanh_fullbatch5k" ? "≤ PyTorch" : ""]);
        table.Add(["", "HVP / gradient", F(hvp / grad), F(T("hvp_over_grad")), "", "≤ 3"]);
        table.Add(["", "train step ms", F(train), F(T("train_step_ms")), Ratio(train, T("train_step_ms")), key == "resnet20_b128" ? "≤ 2 × PyTorch" : ""]);
        table.Add(["", "Lanczos, 20 iterations, ms", F(lanczos), F(T("lanczos20_ms")), Ratio(lanczos, T("lanczos20_ms")), ""]);
        if (accelerator is not null)
        {
            table.Add(["", "host reads / writes per train step", $"{stepTransfers.Reads} / {stepTransfers.Writes}", "", "", "the loss alone: 1 / 0"]);
            table.Add(["", "kernel launches per train step", $"{stepLaunches}", "", "", ""]);
            table.Add(["", "most launched in a train step", busiest, "", "", ""]);
            table.Add(["", "product multiply-adds issued per useful one (padding of the tiles)", issuedPerUseful.ToString("0.00", CultureInfo.InvariantCulture), "", "", ""]);
            table.Add(["", "kernel launches per HVP", $"{hvpLaunches}", "", "", ""]);
            table.Add(["", "host reads per 20 Lanczos iterations (bytes)", $"{lanczosTransfers.Reads} ({lanczosTransfers.BytesRead:N0})", "", "", "scalars alone"]);
        }
    }

    private static string? Arg(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    private static double? Number(JsonElement e, string key) => e.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : null;

    private static string F(double? v) => v is { } x && double.IsFinite(x) ? x.ToString(x >= 100 ? "0" : x >= 10 ? "0.0" : "0.000", CultureInfo.InvariantCulture) : "—";

    /// <summary>engine / PyTorch (for times, below 1 is faster; for rates, above 1 is faster).</summary>
    private static string Ratio(double engine, double? torch) => torch is { } t && t != 0 ? (engine / t).ToString("0.00", CultureInfo.InvariantCulture) : "—";
}

/// <summary>Median wall-clock of an action that returns an array, synchronizing the device after each run.</summary>
internal sealed class Harness(Device device, int repeats)
{
    public int Repeats => repeats;

    public double Time(Func<object> action, int? repeats = null)
    {
        int n = repeats ?? this.Repeats;
        Sync(action()); // warm-up: compiles kernels, fills the memory pool
        var times = new double[n];
        for (int i = 0; i < n; i++)
        {
            var clock = Stopwatch.StartNew();
            Sync(action());
            times[i] = clock.Elapsed.TotalMilliseconds;
        }
        Array.Sort(times);
        return times[n / 2];
    }

    private void Sync(object result)
    {
        if (device is AcceleratorDevice a) a.Synchronize();
        GC.KeepAlive(result);
    }
}
