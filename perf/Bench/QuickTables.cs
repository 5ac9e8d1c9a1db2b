using System.Globalization;
using Curvature.Autodiff;
using Curvature.Engine;
using Curvature.Kernels;
using Curvature.Kernels.Cpu;
using Curvature.Training;
using Curvature.Models;
using Curvature.Spectral;

namespace Curvature.Bench;

/// <summary>
/// Quick Markdown tables: engine and OpenBLAS measured in the same run. All engine timings of a table come
/// first and OpenBLAS's after them, because OpenBLAS's worker threads keep spinning for a while after a call
/// and would steal the cores from whatever runs next.
/// </summary>
internal static class QuickTables
{
    private static string F(double v) => v.ToString("0.0", CultureInfo.InvariantCulture);

    /// <summary>Between timing rounds: collected, so outputs come from the pool as in training.</summary>
    private static void CollectGarbage()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
    }

    private static double MedianSeconds(Action a, int repeats) => Timing.MedianMs(a, warmup: 1, repeats: repeats) / 1000;

    private static float[] Random(int n, int seed)
    {
        var r = new System.Random(seed);
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float)(r.NextDouble() * 2 - 1);
        return x;
    }

    /// <summary>One GEMM problem: C[m×n] = op(A)·op(B).</summary>
    internal sealed record GemmCase(string Name, bool TransA, bool TransB, int M, int N, int K)
    {
        public double Flops => 2.0 * M * N * K;
        public int Lda => TransA ? M : K;
        public int Ldb => TransB ? K : N;
    }

    /// <summary>
    /// GFLOP/s of each case on the engine and on OpenBLAS (NaN when absent), interleaved: every round runs the engine's
    /// product, then OpenBLAS's, then waits untimed for OpenBLAS's worker threads to stop spinning (they busy-wait
    /// about 2²⁸ cycles after a call and would take the cores from the engine's next product). Each timing is the mean
    /// of back-to-back calls worth at least a GFLOP (three at least): after that wait the cores are idle, and a single
    /// call of a few milliseconds, the first after it, measured how fast idle cores and sleeping worker threads wake up
    /// (on two threads the engine's 1024 read half its rate so, while OpenBLAS, timed second, ran on cores the engine
    /// had just warmed).
    /// </summary>
    internal static (double Engine, double Blas)[] TimeGemm(GemmCase[] cases, int repeats)
    {
        bool blas = OpenBlas.TryLoad();
        return cases.Select((c, i) =>
        {
            var (a, b, cOut) = (Random(c.M * c.K, 2 * i), Random(c.K * c.N, 2 * i + 1), new float[c.M * c.N]);
            int calls = (int)Math.Max(3, Math.Ceiling(1e9 / c.Flops));
            Action Repeated(Action once) => () => { for (int r = 0; r < calls; r++) once(); };
            Action engine = () => Curvature.Kernels.Cpu.Gemm.Multiply<float>(c.TransA, c.TransB, c.M, c.N, c.K, a, c.Lda, b, c.Ldb, cOut, c.N, false);
            var actions = new List<Action> { Repeated(engine) };
            if (blas) actions.Add(Repeated(() => OpenBlas.Sgemm(c.TransA, c.TransB, c.M, c.N, c.K, a, c.Lda, b, c.Ldb, cOut, c.N)));
            // After the wait, one untimed engine call wakes the idle cores (and the engine's pool threads), so that neither
            // library is timed on cores that have just been idle; OpenBLAS's own threads still wake from their sleep.
            var ms = Timing.InterleavedMedianMs(actions.ToArray(), warmup: 1, repeats: repeats, betweenRounds: blas ? () => { OpenBlas.LetThreadsSleep(); engine(); } : null);
            return (c.Flops * calls / ms[0] / 1e6, blas ? c.Flops * calls / ms[1] / 1e6 : double.NaN);
        }).ToArray();
    }

    /// <summary>Runs <paramref name="body"/> with the engine and OpenBLAS on <paramref name="threads"/> threads, then restores both.</summary>
    internal static T WithThreads<T>(int threads, Func<T> body)
    {
        int engine = Parallelism.MaxThreads, blas = OpenBlas.Threads;
        Parallelism.MaxThreads = threads;
        OpenBlas.Threads = threads;
        try { return body(); }
        finally
        {
            Parallelism.MaxThreads = engine;
            if (blas > 0) OpenBlas.Threads = blas;
        }
    }

    private static void Header()
    {
        Console.WriteLine($"threads: {Parallelism.MaxThreads}; vector width: {(System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated ? "512" : "256")} bits; OpenBLAS: {(OpenBlas.TryLoad() ? $"{OpenBlas.LibraryPath}, kernel {OpenBlas.Choice}" : "not installed (perf/torch/install.sh installs it)")}");
        Console.WriteLine();
    }

    /// <summary>The products of one 3×3 convolution per ResNet-20 stage at batch 128 (32×32 input): forward, input gradient, weight gradient.</summary>
    internal static GemmCase[] ResNetGemms() =>
    [
        new("stage 1 fwd W·cols", false, false, 16, 131072, 144),
        new("stage 1 dcols Wᵀ·Ḡ", true, false, 144, 131072, 16),
        new("stage 1 dW Ḡ·colsᵀ", false, true, 16, 144, 131072),
        new("stage 2 fwd", false, false, 32, 32768, 288),
        new("stage 2 dcols", true, false, 288, 32768, 32),
        new("stage 2 dW", false, true, 32, 288, 32768),
        new("stage 3 fwd", false, false, 64, 8192, 576),
        new("stage 3 dcols", true, false, 576, 8192, 64),
        new("stage 3 dW", false, true, 64, 576, 8192),
    ];

    /// <summary><c>gemm --resnet</c>: the convolution GEMMs of ResNet-20 against OpenBLAS, one thread and all.</summary>
    public static void ResNetGemm(int repeats) => ProductTable(ResNetGemms(), repeats);

    /// <summary>Products against OpenBLAS on one thread and on all, one row per product and thread count.</summary>
    private static void ProductTable(GemmCase[] cases, int repeats)
    {
        Header();
        Console.WriteLine("| product | m×n×k | threads | engine GFLOP/s | OpenBLAS GFLOP/s | ratio |");
        Console.WriteLine("|---|---|---|---|---|---|");
        foreach (int threads in new[] { 1, Parallelism.MaxThreads }.Distinct())
        {
            var r = WithThreads(threads, () => TimeGemm(cases, repeats));
            for (int i = 0; i < cases.Length; i++)
                Console.WriteLine($"| {cases[i].Name} | {cases[i].M}×{cases[i].N}×{cases[i].K} | {threads} | {F(r[i].Engine)} | {F(r[i].Blas)} | {r[i].Engine / r[i].Blas:0.00} |");
        }
    }

    /// <summary>
    /// <c>conv --quick</c>: the convolution kernels (forward, both adjoints) on every kind of ResNet-20 layer at batch
    /// 128 (CIFAR shapes: the stem, the 3×3 stride-1 layers of each stage, the stride-2 3×3 and 1×1 layers), against
    /// OpenBLAS on the same product with the im2col columns given for free; then the pair forms a JVP uses,
    /// f(a, b) + f(a₂, b₂) in one call, against the same two terms as two passes.
    /// </summary>
    public static void Convolutions(int repeats)
    {
        Header();
        var layers = new (string Name, ConvolutionGeometry G)[]
        {
            ("stem 3→16, 32×32", new(128, 3, 32, 32, 16, 3, 3, 1, 1)),
            ("16→16, 32×32", new(128, 16, 32, 32, 16, 3, 3, 1, 1)),
            ("32→32, 16×16", new(128, 32, 16, 16, 32, 3, 3, 1, 1)),
            ("64→64, 8×8", new(128, 64, 8, 8, 64, 3, 3, 1, 1)),
            ("16→32 3×3 stride 2", new(128, 16, 32, 32, 32, 3, 3, 2, 1)),
            ("16→32 1×1 stride 2", new(128, 16, 32, 32, 32, 1, 1, 2, 0)),
            ("32→64 3×3 stride 2", new(128, 32, 16, 16, 64, 3, 3, 2, 1)),
        };
        Console.WriteLine("| layer | kernel | engine GFLOP/s | OpenBLAS GEMM alone GFLOP/s | ratio |");
        Console.WriteLine("|---|---|---|---|---|");
        var pairs = new List<(string Layer, double Forward, double ForwardTwo, double Input, double InputTwo)>();
        foreach (var (name, g) in layers)
        {
            var x = Random(g.N * g.C * g.H * g.W, 1);
            var w = Random(g.O * g.K, 2);
            var gy = Random(g.N * g.O * g.Q, 3);
            var (x2, w2, gy2) = (Random(x.Length, 4), Random(w.Length, 5), Random(gy.Length, 6));
            var y = new float[gy.Length];
            var wBar = new float[w.Length];
            var xBar = new float[x.Length];
            double flops = 2.0 * g.N * g.O * g.Q * g.K;
            double[] engine =
            [
                flops / MedianSeconds(() => Convolution.Forward<float>(x, w, y, g), repeats) / 1e9,
                flops / MedianSeconds(() => Convolution.InputGradient<float>(gy, w, xBar, g), repeats) / 1e9,
                flops / MedianSeconds(() => Convolution.WeightGradient<float>(x, gy, wBar, g), repeats) / 1e9,
            ];
            int p = g.N * g.Q;
            var blas = TimeGemm([new GemmCase("fwd", false, false, g.O, p, g.K), new GemmCase("dcols", true, false, g.K, p, g.O), new GemmCase("dW", false, true, g.O, g.K, p)], repeats);
            string[] names = ["forward", "input gradient", "weight gradient"];
            for (int i = 0; i < 3; i++)
                Console.WriteLine($"| {(i == 0 ? name : "")} | {names[i]} | {F(engine[i])} | {F(blas[i].Blas)} | {engine[i] / blas[i].Blas:0.00} |");
            // One call and two passes interleaved, so that their ratio survives a noisy machine.
            var ms = Timing.InterleavedMedianMs(
            [
                () => Convolution.ForwardPair<float>(x, w, x2, w2, y, g),
                () => { Convolution.Forward<float>(x, w, y, g); Convolution.Forward<float>(x2, w2, y, g, accumulate: true); },
                () => Convolution.InputGradientPair<float>(gy, w, gy2, w2, xBar, g),
                () => { Convolution.InputGradient<float>(gy, w, xBar, g); Convolution.InputGradient<float>(gy2, w2, xBar, g, accumulate: true); },
            ], warmup: 1, repeats: repeats);
            pairs.Add((name, 2 * flops / ms[0] / 1e6, 2 * flops / ms[1] / 1e6, 2 * flops / ms[2] / 1e6, 2 * flops / ms[3] / 1e6));
        }
        Console.WriteLine();
        Console.WriteLine("| layer | pair | one call GFLOP/s | two passes GFLOP/s | one / two |");
        Console.WriteLine("|---|---|---|---|---|");
        foreach (var (layer, forward, forwardTwo, input, inputTwo) in pairs)
        {
            Console.WriteLine($"| {layer} | forward | {F(forward)} | {F(forwardTwo)} | {forward / forwardTwo:0.00} |");
            Console.WriteLine($"|  | input gradient | {F(input)} | {F(inputTwo)} | {input / inputTwo:0.00} |");
        }
    }

    /// <summary>
    /// <c>elementwise --quick</c>: memory-bound ops on one ResNet stage-1 activation (128×16×32×32 floats, 8 MB),
    /// each with its output allocated fresh as in training, against the same op into a reused buffer and a copy; then
    /// the normalization kernels at every BatchNorm shape of ResNet-20.
    /// </summary>
    public static void ElementWiseOps(int repeats)
    {
        var rng = new RandomGenerator(0);
        var x = rng.Normal(new Shape(128, 16, 32, 32));
        var y = rng.Normal(new Shape(128, 16, 32, 32));
        var buffer = new float[x.Size];
        var gamma = rng.Normal(new Shape(16));
        var mask = rng.Uniform(new Shape(32, 32)).Apply(BinaryOp.Greater, 0.5);
        var fill = NdArray.Scalar(-1e9);
        var beta = rng.Normal(new Shape(16));
        double bytes = x.Size * 4.0;
        var rows = new (string Name, Action Run, double Traffic)[]
        {
            ("copy into a reused buffer", () => x.Span<float>().CopyTo(buffer), 2),
            ("relu into a reused buffer", () => System.Numerics.Tensors.TensorPrimitives.Max(x.Span<float>(), 0f, buffer), 2),
            ("NdArray relu (fresh output)", () => x.Apply(UnaryOp.Relu), 2),
            ("NdArray add (fresh output)", () => _ = x + y, 3),
            ("NdArray normalize, channels (fresh output)", () => x.Normalize(1, 2, 1e-5), 3),
            ("NdArray normalize Jacobian, channels", () => x.NormalizeJacobian(y, 1, 2, 1e-5), 5),
            ("NdArray scale-shift, channels", () => x.ScaleShift(gamma, beta, 1, 2), 2),
            ("NdArray group mean product, channels", () => x.GroupMeanProduct(y, 1, 2), 2),
            ("NdArray sum over N, H, W", () => x.Sum([0, 2, 3]), 1),
            ("NdArray x > 0 mask", () => x.Apply(BinaryOp.Greater, 0), 2),
            ("NdArray log-softmax, rows of 256", () => x.Reshape(-1, 256).LogSoftmax(), 2),
            ("NdArray permute (1, 0, 2, 3)", () => x.Permute(1, 0, 2, 3), 2),
            ("NdArray where(mask [1024], x, scalar)", () => NdArray.Where(mask, x, fill), 2),
            ("NdArray erf", () => x.Apply(UnaryOp.Erf), 2),
            ("NdArray exp", () => x.Apply(UnaryOp.Exp), 2),
            ("NdArray x·x", () => _ = x * x, 3),
            ("fresh 8 MB array, touched", () => { var a = GC.AllocateUninitializedArray<float>((int)x.Size); for (int i = 0; i < a.Length; i += 1024) a[i] = 1; }, 1),
        };
        var ms = Timing.InterleavedMedianMs(rows.Select(r => r.Run).ToArray(), warmup: 2, repeats: repeats);
        Console.WriteLine("| op on 8 MB | ms | GB/s (bytes moved) |");
        Console.WriteLine("|---|---|---|");
        for (int i = 0; i < rows.Length; i++) Console.WriteLine($"| {rows[i].Name} | {ms[i]:0.00} | {rows[i].Traffic * bytes / ms[i] / 1e6:0.0} |");
        Console.WriteLine();
        NormalizationShapes(repeats);
    }

    /// <summary>
    /// The normalization kernels at each of ResNet-20's BatchNorm shapes (batch 128), with a streaming scale-shift of
    /// the same array in the same interleaved rounds as the bandwidth they should reach. Bytes moved count each
    /// array once per pass over memory: the statistics pass reads, the write pass reads and writes.
    /// </summary>
    private static void NormalizationShapes(int repeats)
    {
        Console.WriteLine("| BatchNorm shape (N 128) | kernel | ms | GB/s (bytes moved) | / scale-shift GB/s |");
        Console.WriteLine("|---|---|---|---|---|");
        foreach (var (c, side) in new[] { (16, 32), (32, 16), (64, 8) })
        {
            var rng = new RandomGenerator((ulong)c);
            var shape = new Shape(128, c, side, side);
            NdArray x = rng.Normal(shape, 1, 2), u = rng.Normal(shape), v = rng.Normal(shape), w = rng.Normal(shape);
            NdArray gamma = rng.Normal(new Shape(c)), beta = rng.Normal(new Shape(c));
            var ju = x.NormalizeJacobian(u, 1, 2, 1e-5);
            var rows = new (string Name, Action Run, double Traffic)[]
            {
                ("scale-shift (streaming reference)", () => x.ScaleShift(gamma, beta, 1, 2), 2),
                ("normalize", () => x.Normalize(1, 2, 1e-5), 3),
                ("normalize Jacobian", () => x.NormalizeJacobian(u, 1, 2, 1e-5), 5),
                ("normalize Jacobian tangent", () => x.NormalizeJacobianTangent(u, ju, v, w, 1, 2, 1e-5), 10),
                ("group mean product", () => x.GroupMeanProduct(u, 1, 2), 2),
            };
            // Collected between rounds, so outputs come from the pool as in training (a fresh 2 MB array's page faults
            // cost ten times the kernel).
            var ms = Timing.InterleavedMedianMs(rows.Select(r => r.Run).ToArray(), warmup: 2, repeats: repeats, betweenRounds: CollectGarbage);
            double bytes = shape.Size * 4.0, reference = rows[0].Traffic * bytes / ms[0] / 1e6;
            for (int i = 0; i < rows.Length; i++)
            {
                double rate = rows[i].Traffic * bytes / ms[i] / 1e6;
                Console.WriteLine($"| {(i == 0 ? $"{c}×{side}×{side}" : "")} | {rows[i].Name} | {ms[i]:0.000} | {rate:0.0} | {rate / reference:0.00} |");
            }
        }
    }

    /// <summary>
    /// <c>batchnorm</c>: a ResNet block's training-mode BatchNorm, relu(bn(x) + z), at each of ResNet-20's shapes
    /// (batch 128): the fused <see cref="Autodiff.Primitives.NormalizeScaleShift"/> against the same layer composed of
    /// <see cref="Autodiff.Primitives.Normalize"/> and <see cref="Autodiff.Primitives.ScaleShift"/>, forward, gradient
    /// and Hessian-vector product of the scalar Σ y·w, interleaved in one run so the ratio survives a noisy host.
    /// </summary>
    public static void BatchNormLayer(int repeats)
    {
        Console.WriteLine("| BatchNorm shape (N 128) | pass | composed ms | fused ms | fused / composed |");
        Console.WriteLine("|---|---|---|---|---|");
        foreach (var (c, side) in new[] { (16, 32), (32, 16), (64, 8) })
        {
            var rng = new RandomGenerator((ulong)c);
            var shape = new Shape(128, c, side, side);
            NdArray x = rng.Normal(shape, 1, 2), z = rng.Normal(shape), w = rng.Normal(shape);
            NdArray gamma = rng.Normal(new Shape(c), 1, 0.2), beta = rng.Normal(new Shape(c), 0, 0.2);
            Tensor[] at = [x, gamma, beta, z];
            Tensor[] direction = [rng.Normal(shape), rng.Normal(new Shape(c)), rng.Normal(new Shape(c)), rng.Normal(shape)];
            Tensor Composed(Tensor[] p) =>
                (new Autodiff.Primitives.ScaleShift(1, 2, relu: true).Apply(p[0].Normalize(1, 2, 1e-5), p[1], p[2], p[3]) * w).Sum();
            Tensor Fused(Tensor[] p) => (new Autodiff.Primitives.NormalizeScaleShift(1, 2, 1e-5, relu: true).Apply(p) * w).Sum();
            var passes = new (string Name, Func<Func<Tensor[], Tensor>, Action> Run)[]
            {
                ("forward", f => () => _ = f(at).Data),
                ("gradient", f => () => _ = Derivatives.Grad(f, at)[0].Data),
                ("HVP", f => () => _ = Derivatives.Hvp(f, at, direction).Product[0].Data),
            };
            foreach (var (name, run) in passes)
            {
                var ms = Timing.InterleavedMedianMs([run(Composed), run(Fused)], warmup: 2, repeats: repeats, betweenRounds: CollectGarbage);
                Console.WriteLine($"| {(name == "forward" ? $"{c}×{side}×{side}" : "")} | {name} | {ms[0]:0.00} | {ms[1]:0.00} | {ms[1] / ms[0]:0.00} |");
            }
        }
    }

    /// <summary>
    /// <c>gemm --quick</c>: square SGEMM 256…2048 against OpenBLAS on one thread and on all; with
    /// <paramref name="standalone"/>, OpenBLAS also in a C process of its own (perf/openblas/sgemm.c), which checks
    /// that the in-process baseline is OpenBLAS at its own speed.
    /// </summary>
    public static void SquareGemm(int repeats, bool standalone)
    {
        Header();
        int[] sizes = [256, 512, 1024, 2048];
        var cases = sizes.Select(n => new GemmCase(n.ToString(CultureInfo.InvariantCulture), false, false, n, n, n)).ToArray();
        Console.WriteLine("| size | threads | engine GFLOP/s | OpenBLAS GFLOP/s | ratio |");
        Console.WriteLine("|---|---|---|---|---|");
        foreach (int threads in new[] { 1, Parallelism.MaxThreads }.Distinct())
        {
            var r = WithThreads(threads, () => TimeGemm(cases, repeats));
            for (int i = 0; i < cases.Length; i++)
            {
                Console.WriteLine($"| {cases[i].Name} | {threads} | {F(r[i].Engine)} | {F(r[i].Blas)} | {r[i].Engine / r[i].Blas:0.00} |");
            }
        }
        if (!standalone) return;
        // OpenBLAS alone in this process against OpenBLAS in a C process of its own, alternated three times (this
        // machine's neighbors move single figures by a third): the medians of each side.
        Console.WriteLine();
        Console.WriteLine("| size | threads | OpenBLAS in this process GFLOP/s | OpenBLAS standalone (C) GFLOP/s | in-process / standalone |");
        Console.WriteLine("|---|---|---|---|---|");
        int[] checkedSizes = [1024, 2048];
        foreach (int threads in new[] { 1, Parallelism.MaxThreads }.Distinct())
        {
            var here = checkedSizes.ToDictionary(n => n, _ => new List<double>());
            var there = checkedSizes.ToDictionary(n => n, _ => new List<double>());
            string core = "";
            for (int round = 0; round < 3; round++)
            {
                WithThreads(threads, () =>
                {
                    foreach (int n in checkedSizes)
                    {
                        var (a, b, c) = (Random(n * n, 1), Random(n * n, 2), new float[n * n]);
                        here[n].Add(2.0 * n * n * n / Timing.MedianMs(() => OpenBlas.Sgemm(false, false, n, n, n, a, n, b, n, c, n), warmup: 1, repeats: repeats) / 1e6);
                    }
                    return 0;
                });
                OpenBlas.LetThreadsSleep();
                var (name, rates) = OpenBlas.Standalone(threads, repeats, checkedSizes);
                core = name;
                foreach (var (n, rate) in rates) there[n].Add(rate);
            }
            foreach (int n in checkedSizes)
            {
                double a = Timing.Median(here[n].ToArray()), b = Timing.Median(there[n].ToArray());
                Console.WriteLine($"| {n} | {threads} | {F(a)} | {F(b)} (kernel {core}) | {a / b:0.00} |");
            }
        }
    }

    /// <summary>
    /// The models' skinny products (N or K of 10–200, M in thousands): the MLP's gradient at batch 5000 and the
    /// GPT-6 head and attention products at batch 8 × 256 positions.
    /// </summary>
    internal static GemmCase[] SkinnyGemms() =>
    [
        .. MlpGemms(5000),
        new("GPT-6 lm_head X·Wᵀ", false, true, 2048, 65, 384),
        new("GPT-6 lm_head dX Ḡ·W", false, false, 2048, 384, 65),
        new("GPT-6 lm_head dW Ḡᵀ·X", true, false, 65, 384, 2048),
        new("GPT-6 scores Q·Kᵀ (one head)", false, true, 256, 256, 64),
        new("GPT-6 attention P·V (one head)", false, false, 256, 64, 256),
    ];

    /// <summary><c>gemm --skinny --quick</c>: the models' skinny products against OpenBLAS, one thread and all.</summary>
    public static void SkinnyGemm(int repeats) => ProductTable(SkinnyGemms(), repeats);

    /// <summary>The GEMMs of one MLP gradient at batch n (forward, then the backward products).</summary>
    internal static GemmCase[] MlpGemms(int n) =>
    [
        new("fwd X·W1ᵀ", false, true, n, 200, 784),
        new("fwd H1·W2ᵀ", false, true, n, 200, 200),
        new("fwd H2·W3ᵀ", false, true, n, 10, 200),
        new("bwd Ḡ3ᵀ·H2", true, false, 10, 200, n),
        new("bwd Ḡ3·W3", false, false, n, 200, 10),
        new("bwd Ḡ2ᵀ·H1", true, false, 200, 200, n),
        new("bwd Ḡ2·W2", false, false, n, 200, 200),
        new("bwd Ḡ1ᵀ·X", true, false, 200, 784, n),
    ];

    /// <summary><c>mlp --quick</c>: the MLP's forward, gradient and HVP at batch 5000, and its GEMMs against OpenBLAS.</summary>
    public static void Mlp(int repeats)
    {
        Header();
        var rng = new RandomGenerator(0);
        var model = Models.Mlp.Create(rng);
        var w = model.Parameters().Select(p => (Tensor)p.Data).ToArray();
        var f = Loss.Function(model, "mse", rng.Normal(new Shape(5000, 784)), rng.Integers(new Shape(5000), 10));
        var v = w.Select(t => (Tensor)rng.Normal(t.Shape)).ToArray();
        var ms = Timing.InterleavedMedianMs([() => f(w).ToScalar(), () => Derivatives.ValueAndGrad(f, w), () => Derivatives.Hvp(f, w, v)], repeats: repeats);

        var gemms = MlpGemms(5000);
        var r = TimeGemm(gemms, repeats);
        double gradFlops = gemms.Sum(g => g.Flops); // every product above is in one gradient
        double blasSquare = TimeGemm([new GemmCase("2048", false, false, 2048, 2048, 2048)], 5)[0].Blas;

        Console.WriteLine("| MLP 784-200-200-10 tanh, MSE, batch 5000, float32 | ms |");
        Console.WriteLine("|---|---|");
        Console.WriteLine($"| forward | {F(ms[0])} |");
        Console.WriteLine($"| gradient | {F(ms[1])} |");
        Console.WriteLine($"| HVP | {F(ms[2])} |");
        Console.WriteLine($"| HVP / gradient | {ms[2] / ms[1]:0.00} |");
        Console.WriteLine($"| gradient GEMM FLOP/s (GFLOP/s) | {F(gradFlops / ms[1] / 1e6)} |");
        Console.WriteLine($"| OpenBLAS SGEMM 2048 (GFLOP/s), same run | {F(blasSquare)} |");
        Console.WriteLine($"| gradient FLOP/s / OpenBLAS SGEMM | {gradFlops / ms[1] / 1e6 / blasSquare:0.00} |");
        Console.WriteLine();
        Console.WriteLine("| GEMM in the gradient | m×n×k | engine GFLOP/s | OpenBLAS GFLOP/s | ratio |");
        Console.WriteLine("|---|---|---|---|---|");
        for (int i = 0; i < gemms.Length; i++)
            Console.WriteLine($"| {gemms[i].Name} | {gemms[i].M}×{gemms[i].N}×{gemms[i].K} | {F(r[i].Engine)} | {F(r[i].Blas)} | {r[i].Engine / r[i].Blas:0.00} |");
    }

    /// <summary>
    /// <c>lanczos --quick</c>: 20 Lanczos iterations (full reorthogonalization) on the MLP's Hessian at batch 5000
    /// against 20 bare HVPs through the same operator, interleaved in one run.
    /// </summary>
    public static void Lanczos(int repeats)
    {
        Header();
        var rng = new RandomGenerator(0);
        var model = Models.Mlp.Create(rng);
        var op = new HessianOperator(Loss.Function(model, "mse", rng.Normal(new Shape(5000, 784)), rng.Integers(new Shape(5000), 10)),
            model.Parameters().Select(p => p.Data).ToArray());
        var v = Vectors.Normalize(rng.Normal(new Shape((int)op.Dimension)));
        const int iterations = 20;
        // The same Lanczos on an operator that costs almost nothing (a diagonal of the same dimension) isolates
        // the method's own work: reorthogonalization, the tridiagonal solve, the Ritz vector.
        var cheap = new DiagonalOperator(rng.Uniform(new Shape((int)op.Dimension), 0, 10));
        var ms = Timing.InterleavedMedianMs(
        [
            () => { for (int i = 0; i < iterations; i++) op.Apply(v); },
            () => Spectral.Lanczos.Run(op, iterations, k: 1, start: v, vectors: true),
            () => Spectral.Lanczos.Run(cheap, iterations, k: 1, start: v, vectors: true),
        ], warmup: 1, repeats: repeats);
        Console.WriteLine("| MLP, batch 5000, float32 | ms |");
        Console.WriteLine("|---|---|");
        Console.WriteLine($"| 20 HVPs | {F(ms[0])} |");
        Console.WriteLine($"| Lanczos, 20 iterations | {F(ms[1])} |");
        Console.WriteLine($"| Lanczos / 20 HVPs | {ms[1] / ms[0]:0.000} |");
        Console.WriteLine($"| Lanczos's own work (same run on a diagonal operator) | {F(ms[2])} |");
        Console.WriteLine($"| (20 HVPs + own work) / 20 HVPs | {(ms[0] + ms[2]) / ms[0]:0.000} |");
    }

    /// <summary>
    /// <c>noise --quick</c>: the gradient-noise targets of issue 28 on the MLP (784-200-200-10 tanh, cross-entropy,
    /// float32) at batch 1,000, interleaved in one run: every example's gradient as a vector (chunked outer products from one reverse pass, and
    /// 1,000 reverse passes of one example),
    /// every example's directional derivative along one direction (one JVP) and the exact tr Σ (per-example squared
    /// norms from one reverse pass) against one batch gradient (target: per-example gradients within 3×), and
    /// <c>Lab noise</c>'s report against <c>Lab spectrum</c>'s at the same k = 5 and 40 Lanczos iterations (target: within 3×).
    /// </summary>
    public static void Noise(int repeats)
    {
        Header();
        var rng = new RandomGenerator(0);
        var model = Models.Mlp.Create(rng);
        var x = rng.Normal(new Shape(1000, 784));
        var y = rng.Integers(new Shape(1000), 10);
        var w = model.Parameters().Select(p => (Tensor)p.Data).ToArray();
        var f = Loss.Function(model, "ce", x, y);
        var noise = new GradientNoise(model, "ce", x, y, training: false);
        var v = w.Select(t => rng.Normal(t.Shape)).ToArray();
        var data = new Models.Data.Dataset(x, y);
        var quiet = TextWriter.Null;
        var mean = noise.LossAndGradient().Gradient;
        int reportRepeats = Math.Max(3, repeats / 3);
        var ms = Timing.InterleavedMedianMs(
        [
            () => Derivatives.ValueAndGrad(f, w),
            () => { for (int i = 0; i < noise.Count; i++) noise.ExampleGradient(i); },
            () => { foreach (var _ in noise.ExampleGradients()) { } },
            () => { foreach (var _ in noise.ExampleGradients(64)) { } },
            () => noise.Directional(v),
            () => noise.TraceExact(mean),
        ], warmup: 1, repeats: repeats);
        var reports = Timing.InterleavedMedianMs(
        [
            () => Curvature.Lab.Noise.Run(model, data, "ce", false, topk: 5, iterations: 40, minibatch: 32, samples: 20, exactLimit: 2000, probes: 50, new RandomGenerator(1), quiet),
            () => Curvature.Lab.Spectrum.Run(model, data, "ce", false, topk: 5, iterations: 40, probes: 10, chunk: 1000, new RandomGenerator(1)),
        ], warmup: 1, repeats: reportRepeats);
        Console.WriteLine("| MLP 784-200-200-10 tanh, cross-entropy, batch 1,000, float32 | ms | ratio | target |");
        Console.WriteLine("|---|---|---|---|");
        Console.WriteLine($"| one batch gradient | {F(ms[0])} | 1 | |");
        Console.WriteLine($"| all 1,000 per-example gradients as vectors, `ExampleGradients()`: one reverse pass, outer products δᵢaᵢᵀ in chunks of {noise.ExampleGradients().First().Gradients.Shape[0]} rows of 199,210 (1 MiB per thread, in L2) | {F(ms[2])} | {ms[2] / ms[0]:0.0} | ≤ 3 |");
        Console.WriteLine($"| the same in chunks of 64 rows (51 MB, past the caches) | {F(ms[3])} | {ms[3] / ms[0]:0.0} | |");
        Console.WriteLine($"| the same by 1,000 reverse passes of one example (`ExampleGradient(i)`, any model's path) | {F(ms[1])} | {ms[1] / ms[0]:0.0} | |");
        Console.WriteLine($"| every example's gᵢᵀv (one JVP of the per-example losses) | {F(ms[4])} | {ms[4] / ms[0]:0.00} | |");
        Console.WriteLine($"| exact tr Σ = (Σᵢ ‖gᵢ‖² − n‖ḡ‖²)/(n − 1), the squared norms ‖δᵢ‖²‖ãᵢ‖² from one reverse pass | {F(ms[5])} | {ms[5] / ms[0]:0.00} | ≤ 3 |");
        Console.WriteLine($"| `Lab spectrum` report (k 5, 40 iterations, 10 SLQ probes) | {F(reports[1])} | 1 | |");
        Console.WriteLine($"| `Lab noise` report (k 5, 40 iterations, exact tr Σ, 20 minibatches of 32) | {F(reports[0])} | {reports[0] / reports[1]:0.00} | ≤ 3 |");
    }

    /// <summary>diag(d)·v: an operator whose product costs one pass over the vector.</summary>
    private sealed class DiagonalOperator(NdArray d) : ILinearOperator
    {
        public long Dimension => d.Size;
        public DType DType => d.DType;
        public Device Device => d.Device;
        public NdArray Apply(NdArray v) => d * v;
    }
}
