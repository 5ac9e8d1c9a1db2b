using System.Globalization;
using System.Text.Json;
using Curvature.Autodiff;
using Curvature.Engine;
using Curvature.Training;
using Curvature.Models;
using Curvature.Optimizers;

namespace Curvature.Bench;

/// <summary>
/// Forward, gradient, HVP and train step of the reference models at the anchor shapes, set against PyTorch 1.13
/// on this CPU (<c>perf/anchors/torch_cpu.json</c>). The four timings of a model are interleaved rounds, so their
/// ratios hold on a noisy machine. The train step is the Lab's: training-mode forward with running-statistics
/// updates, gradient, then SGD with momentum.
/// </summary>
internal static class ModelTables
{
    private static string F(double v) => double.IsNaN(v) ? "—" : v.ToString("0.0", CultureInfo.InvariantCulture);

    /// <summary>The models benchmarked: key in the anchor file, description, model, a batch.</summary>
    private static (string Key, string Name, Func<(Module Model, NdArray X, NdArray Y)> Build)[] Cases() =>
    [
        ("resnet20_b128", "ResNet-20, C 3, 32×32, batch 128", () =>
        {
            var rng = new RandomGenerator(0);
            return (ResNet.ResNet20(rng, 3), rng.Normal(new Shape(128, 3, 32, 32)), rng.Integers(new Shape(128), 10));
        }),
        ("gpt6L384_T256_b8", "GPT 6 layers, d 384, 6 heads, T 256, batch 8", () =>
        {
            var rng = new RandomGenerator(0);
            return (new Gpt(new GptConfig(), rng), rng.Integers(new Shape(8, 256), 65), rng.Integers(new Shape(8, 256), 65));
        }),
        ("gpt4L128_T128_b32", "GPT 4 layers, d 128, 4 heads, T 128, batch 32 (the CPU-sized Lab model)", () =>
        {
            var rng = new RandomGenerator(0);
            return (new Gpt(new GptConfig(Context: 128, Layers: 4, Heads: 4, Width: 128), rng), rng.Integers(new Shape(32, 128), 65), rng.Integers(new Shape(32, 128), 65));
        }),
    ];

    /// <summary>The primitives of one gradient and one HVP of each model (the quietest of five runs), most time first.</summary>
    public static void Profile(string? only)
    {
        foreach (var (key, name, build) in Cases())
        {
            if (only is not null && !key.StartsWith(only, StringComparison.Ordinal)) continue;
            var (model, x, y) = build();
            var w = model.Parameters().Select(p => (Tensor)p.Value).ToArray();
            var f = Loss.Function(model, "ce", x, y, training: true);
            var v = w.Select(t => (Tensor)new RandomGenerator(1).Normal(t.Shape)).ToArray();
            Derivatives.ValueAndGrad(f, w); // warm-up
            foreach (var (what, action) in new (string, Action)[] { ("gradient", () => Derivatives.ValueAndGrad(f, w)), ("HVP", () => Derivatives.Hvp(f, w, v)) })
            {
                // The quietest of five runs: one run on a shared two-core host is often a third slower.
                OpProfile profile = null!;
                double total = double.PositiveInfinity;
                for (int run = 0; run < 5; run++)
                {
                    var candidate = new OpProfile();
                    var clock = System.Diagnostics.Stopwatch.StartNew();
                    using (OpProfile.Record(candidate)) action();
                    double elapsed = clock.Elapsed.TotalMilliseconds;
                    if (elapsed < total) (profile, total) = (candidate, elapsed);
                }
                Console.WriteLine($"{name}: {what} {F(total)} ms (quietest of 5 runs)");
                Console.WriteLine("| primitive | calls | ms | share | GFLOP/s |");
                Console.WriteLine("|---|---|---|---|---|");
                foreach (var (op, e) in profile.ByTime().Take(14))
                    Console.WriteLine($"| {op} | {e.Calls} | {F(e.Milliseconds)} | {e.Milliseconds / total:P0} | {F(e.Flops / e.Milliseconds / 1e6)} |");
                Console.WriteLine();
            }
        }
    }

    public static void Run(int repeats, string? only, bool trainOnly = false)
    {
        var anchors = LoadAnchors();
        Console.WriteLine("| model | | engine ms (median) | engine ms (fastest) | PyTorch 1.13 CPU ms | engine / PyTorch (medians) |");
        Console.WriteLine("|---|---|---|---|---|---|");
        foreach (var (key, name, build) in Cases())
        {
            if (only is not null && !key.StartsWith(only, StringComparison.Ordinal)) continue;
            var (model, x, y) = build();
            var ps = model.Parameters();
            var w = ps.Select(p => (Tensor)p.Value).ToArray();
            var f = Loss.Function(model, "ce", x, y, training: true);
            var v = w.Select(t => (Tensor)new RandomGenerator(1).Normal(t.Shape)).ToArray();
            var optimizer = new Momentum(1e-6, 0.9);
            int step = 0;
            double[][] runs = trainOnly
                ? [[double.NaN], .. Timing.InterleavedMs([() => Derivatives.ValueAndGrad(f, w)], warmup: 1, repeats: repeats), [double.NaN],
                   .. Timing.InterleavedMs([() => Trainer.Step(model, optimizer, "ce", x, y, step++, noise: null)], warmup: 1, repeats: repeats)]
                : Timing.InterleavedMs(
                [
                    () => f(w).ToScalar(),
                    () => Derivatives.ValueAndGrad(f, w),
                    () => Derivatives.Hvp(f, w, v),
                    () => Trainer.Step(model, optimizer, "ce", x, y, step++, noise: null),
                ], warmup: 1, repeats: repeats);
            var ms = runs.Select(Timing.Median).ToArray();
            var fastest = runs.Select(r => r.Min()).ToArray();
            anchors.TryGetValue(key, out var a);
            double[] torch = [a?.Fwd ?? double.NaN, a?.Grad ?? double.NaN, a?.Hvp ?? double.NaN, a?.TrainStep ?? double.NaN];
            string[] rows = ["forward", "gradient", "HVP", "train step"];
            for (int i = 0; i < 4; i++)
                Console.WriteLine($"| {(i == 0 ? $"{name} ({model.ParameterCount():N0} parameters)" : "")} | {rows[i]} | {F(ms[i])} | {F(fastest[i])} | {F(torch[i])} | {(double.IsNaN(torch[i]) ? "—" : (ms[i] / torch[i]).ToString("0.00", CultureInfo.InvariantCulture))} |");
            Console.WriteLine($"| | HVP / gradient | {ms[2] / ms[1]:0.00} | {fastest[2] / fastest[1]:0.00} | {(a?.Hvp / a?.Grad)?.ToString("0.00", CultureInfo.InvariantCulture) ?? "—"} | |");
        }
        Console.WriteLine($"\nHost memory pool: {HostMemoryPool.Reused:N0} requests reused, {HostMemoryPool.Allocated:N0} allocated (idle limit {HostMemoryPool.IdleLimitBytes >> 20:N0} MiB); {GC.CollectionCount(2)} full collections, {GC.CollectionCount(0)} in all, {GC.GetTotalPauseDuration().TotalMilliseconds:N0} ms paused; {HostMemoryPool.Collections:N0} run by the pool (every {HostMemoryPool.CollectAfterBytes >> 20:N0} MiB handed out), {HostMemoryPool.CollectionTime.TotalMilliseconds:N0} ms in them with their finalizers.");
    }

    private sealed record Anchor(double? Fwd, double? Grad, double? Hvp, double? TrainStep);

    /// <summary>The PyTorch CPU figures, found by walking up from the working directory to <c>perf/anchors</c>.</summary>
    private static Dictionary<string, Anchor> LoadAnchors()
    {
        for (var dir = new DirectoryInfo(Directory.GetCurrentDirectory()); dir is not null; dir = dir.Parent)
        {
            var path = Path.Combine(dir.FullName, "perf", "anchors", "torch_cpu.json");
            if (!File.Exists(path)) continue;
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            var result = new Dictionary<string, Anchor>();
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                if (p.Value.ValueKind != JsonValueKind.Object) continue;
                double? Get(string n) => p.Value.TryGetProperty(n, out var e) && e.ValueKind == JsonValueKind.Number ? e.GetDouble() : null;
                result[p.Name] = new Anchor(Get("fwd_ms"), Get("grad_ms"), Get("hvp_fwd_over_rev_ms") ?? Get("hvp_double_backward_ms"), Get("train_step_ms"));
            }
            return result;
        }
        Console.WriteLine("(perf/anchors/torch_cpu.json not found: PyTorch columns left empty)");
        return [];
    }
}
