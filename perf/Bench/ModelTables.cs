using System.Globalization;
using System.Text.Json;
using Curvature.Autodiff;
using Curvature.Engine;
using Curvature.Kernels;
using Curvature.Training;
using Curvature.Models;
using Curvature.Optimizers;

namespace Curvature.Bench;

/// <summary>
/// Forward, gradient, HVP and train step of the models of docs/MODELS.md, each against its floor (its matrix
/// products' and convolutions' FLOPs at the same run's SGEMM rate) and, with <c>--torch</c>, against PyTorch timed
/// in the same run (perf/torch/bench.py): rounds alternate PyTorch, engine, PyTorch, engine, so a noisy neighbor
/// slows both alike and the ratios of medians hold. The train step is the Lab's: training-mode forward with
/// running-statistics updates, gradient, then SGD with momentum (PyTorch: the same with torch.optim.SGD).
/// </summary>
internal static class ModelTables
{
    private static string F(double v) => double.IsNaN(v) ? "—" : v.ToString("0.0", CultureInfo.InvariantCulture);

    /// <summary>The models benchmarked: key in the anchor file, description, model, a batch.</summary>
    private static (string Key, string Name, Func<(Module Model, NdArray X, NdArray Y)> Build)[] Cases() =>
    [
        ("mlp_b5000", "MLP 784-200-200-10 tanh, batch 5000", () =>
        {
            var rng = new RandomGenerator(0);
            return (Mlp.Create(rng), rng.Normal(new Shape(5000, 784)), rng.Integers(new Shape(5000), 10));
        }),
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

    /// <summary>The models' keys (perf/torch/models.py knows the same ones).</summary>
    public static string[] Keys => Cases().Select(c => c.Key).ToArray();

    /// <summary>The primitives of one gradient and one HVP of each model (the quietest of five runs), most time first.</summary>
    public static void Profile(string? only)
    {
        foreach (var (key, name, build) in Cases())
        {
            if (only is not null && !key.StartsWith(only, StringComparison.Ordinal)) continue;
            var (model, x, y) = build();
            var w = model.Parameters().Select(p => (Tensor)p.Data).ToArray();
            var f = Loss.Function(model, "ce", x, y, training: true);
            var v = w.Select(t => (Tensor)new RandomGenerator(1).Normal(t.Shape)).ToArray();
            Derivatives.ValueAndGrad(f, w); // warm-up
            foreach (var (what, action) in new (string, Action)[] { ("gradient", () => Derivatives.ValueAndGrad(f, w)), ("HVP", () => Derivatives.Hvp(f, w, v)) })
            {
                PrintProfile($"{name}: {what}", action, 14);
                Console.WriteLine();
            }
        }
    }

    /// <summary>
    /// The primitives of <paramref name="action"/>, most time first (<paramref name="rows"/> of them), from the quietest
    /// of five runs: one run on a shared two-core host is often a third slower.
    /// </summary>
    internal static void PrintProfile(string what, Action action, int rows)
    {
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
        Console.WriteLine($"{what}: {F(total)} ms (quietest of 5 runs)");
        Console.WriteLine("| primitive | calls | ms | share | GFLOP/s |");
        Console.WriteLine("|---|---|---|---|---|");
        foreach (var (op, e) in profile.ByTime().Take(rows))
            Console.WriteLine($"| {op} | {e.Calls} | {F(e.Milliseconds)} | {e.Milliseconds / total:P0} | {F(e.Flops / e.Milliseconds / 1e6)} |");
    }

    /// <summary>Prints the table; 1 when <paramref name="torch"/> is asked for and PyTorch cannot run.</summary>
    public static int Run(int repeats, string? only, bool trainOnly, bool torch, TextWriter error)
    {
        TorchBaseline? worker = null;
        if (torch)
        {
            try { worker = TorchBaseline.Start(Parallelism.MaxThreads); }
            catch (Exception e) when (e is InvalidOperationException or FileNotFoundException or JsonException)
            {
                error.WriteLine($"error: {e.Message}");
                return 1;
            }
        }
        using var _ = worker;
        // The floor's rate: OpenBLAS's SGEMM at 2048 on all threads (its best kernel here), measured now; the engine's where OpenBLAS is absent.
        var sgemm = QuickTables.TimeGemm([new QuickTables.GemmCase("2048", false, false, 2048, 2048, 2048)], 5)[0];
        double rate = double.IsNaN(sgemm.Blas) ? sgemm.Engine : sgemm.Blas;
        Console.WriteLine($"threads: {Parallelism.MaxThreads}; OpenBLAS: {(OpenBlas.TryLoad() ? $"kernel {OpenBlas.Choice}" : "not installed")}; SGEMM 2048 in this run: engine {F(sgemm.Engine)}, OpenBLAS {F(sgemm.Blas)} GFLOP/s");
        Console.WriteLine(worker is null ? "PyTorch: not timed (add --torch: perf/torch/bench.py in the same run)" : $"PyTorch: {worker.Description}; rounds alternate PyTorch, engine");
        Console.WriteLine($"floor: a row's matrix-product and convolution FLOPs (FlopCounter.ProductFlops) at {F(rate)} GFLOP/s ({(double.IsNaN(sgemm.Blas) ? "the engine's" : "OpenBLAS's")} SGEMM 2048 above)");
        Console.WriteLine();
        Console.WriteLine("| model | | engine ms (median) | engine ms (fastest) | PyTorch ms (median) | engine / PyTorch (medians) | product GFLOP | floor ms | engine / floor |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|");
        foreach (var (key, name, build) in Cases())
        {
            if (only is not null && !key.StartsWith(only, StringComparison.Ordinal)) continue;
            var (model, x, y) = build();
            var w = model.Parameters().Select(p => (Tensor)p.Data).ToArray();
            var f = Loss.Function(model, "ce", x, y, training: true);
            var v = w.Select(t => (Tensor)new RandomGenerator(1).Normal(t.Shape)).ToArray();
            var optimizer = new Momentum(1e-6, 0.9);
            int step = 0;
            string[] rows = ["forward", "gradient", "HVP", "train step"];
            Action[] all =
            [
                () => f(w).ToScalar(),
                () => Derivatives.ValueAndGrad(f, w),
                () => Derivatives.Hvp(f, w, v),
                () => Trainer.Step(model, optimizer, "ce", x, y, step++, noise: null),
            ];
            int[] timed = trainOnly ? [1, 3] : [0, 1, 2, 3];
            // Each row's product FLOPs, counted on one untimed run (which is also a warm-up).
            var productFlops = new double[4];
            foreach (int i in timed)
            {
                var counter = new FlopCounter();
                using (FlopCounter.Count(counter)) all[i]();
                productFlops[i] = counter.ProductFlops;
            }
            var torchRuns = new List<double[]>();
            if (worker is not null)
            {
                long parameters = worker.Load(key);
                if (parameters != model.ParameterCount())
                    throw new InvalidOperationException($"{key}: PyTorch's model has {parameters:N0} parameters, the engine's {model.ParameterCount():N0}: not the same model.");
                worker.Round(key); // warm-up
                OpenBlas.LetThreadsSleep();
            }
            var runs = Timing.InterleavedMs(timed.Select(i => all[i]).ToArray(), warmup: 1, repeats: repeats, betweenRounds: worker is null ? null : () =>
            {
                torchRuns.Add(worker.Round(key));
                Thread.Sleep(150); // PyTorch's OpenMP and OpenBLAS threads spin a while after its last op
            });
            var ms = Enumerable.Repeat(double.NaN, 4).ToArray();
            var fastest = Enumerable.Repeat(double.NaN, 4).ToArray();
            var torchMs = Enumerable.Repeat(double.NaN, 4).ToArray();
            for (int j = 0; j < timed.Length; j++)
            {
                ms[timed[j]] = Timing.Median(runs[j]);
                fastest[timed[j]] = runs[j].Min();
            }
            if (torchRuns.Count > 0)
                for (int i = 0; i < 4; i++) torchMs[i] = Timing.Median(torchRuns.Select(r => r[i]).ToArray());
            foreach (int i in timed)
            {
                double floor = productFlops[i] / rate / 1e6;
                Console.WriteLine($"| {(i == timed[0] ? $"{name} ({model.ParameterCount():N0} parameters)" : "")} | {rows[i]} | {F(ms[i])} | {F(fastest[i])} | {F(torchMs[i])} | {Ratio(ms[i], torchMs[i])} "
                    + $"| {productFlops[i] / 1e9:0.00} | {F(floor)} | {Ratio(ms[i], floor)} |");
            }
            if (!trainOnly)
                Console.WriteLine($"| | HVP / gradient | {Ratio(ms[2], ms[1])} | {Ratio(fastest[2], fastest[1])} | {Ratio(torchMs[2], torchMs[1])} | | | | |");
        }
        Console.WriteLine($"\nHost memory pool: {HostMemoryPool.Reused:N0} requests reused, {HostMemoryPool.Allocated:N0} allocated (idle limit {HostMemoryPool.IdleLimitBytes >> 20:N0} MiB); {GC.CollectionCount(2)} full collections, {GC.CollectionCount(0)} in all, {GC.GetTotalPauseDuration().TotalMilliseconds:N0} ms paused; {HostMemoryPool.Collections:N0} run by the pool (every {HostMemoryPool.CollectAfterBytes >> 20:N0} MiB handed out), {HostMemoryPool.CollectionTime.TotalMilliseconds:N0} ms in them with their finalizers.");
        return 0;
    }

    private static string Ratio(double a, double b) => double.IsNaN(a) || double.IsNaN(b) ? "—" : (a / b).ToString("0.00", CultureInfo.InvariantCulture);
}
