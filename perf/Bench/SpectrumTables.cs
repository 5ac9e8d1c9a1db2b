using System.Globalization;
using Curvature.Autodiff;
using Curvature.Engine;
using Curvature.Kernels;
using Curvature.Models;
using Curvature.Spectral;
using Curvature.Training;

namespace Curvature.Bench;

/// <summary>
/// <c>spectrum</c>: what <c>Lab spectrum --per-layer</c> costs beside the whole-model report on ResNet-20 (issue 29's
/// target: ≤ 1.5×), and why: the products each part makes and what one block product costs against a whole HVP.
/// </summary>
internal static class SpectrumTables
{
    private static string F(double v) => v.ToString("0.00", CultureInfo.InvariantCulture);

    /// <summary>
    /// Where a recorded block sweep's time goes: the primitives of one whole HVP and of one transposed sweep of
    /// <paramref name="blockName"/>'s block, each the quietest of five runs; 2 when no parameter has that name.
    /// </summary>
    public static int Profile(int batch, string blockName, TextWriter error)
    {
        var rng = new RandomGenerator(0);
        var model = new ResNet(rng);
        var named = model.NamedParameters();
        int index = named.Select(p => p.Name).ToList().IndexOf(blockName);
        if (index < 0)
        {
            error.WriteLine($"error: --profile: ResNet-20 has no parameter '{blockName}'; expected one of {string.Join(", ", named.Select(p => p.Name))}.");
            return 2;
        }
        var data = new Models.Data.Dataset(rng.Normal(new Shape(batch, 1, 28, 28)), rng.Integers(new Shape(batch), 10));
        var hessian = new HessianOperator(Loss.Function(model, "ce", data.Inputs, data.Labels, training: true), named.Select(p => p.Parameter.Data).ToArray());
        var block = hessian.Block([index]);
        var v = rng.Normal(new Shape((int)hessian.Dimension));
        var u = rng.Normal(new Shape((int)block.Dimension));
        var recorded = block.Recorded();
        recorded.Apply(u); // the recording
        Console.WriteLine($"threads: {Parallelism.MaxThreads}; ResNet-20, batch {batch}, training mode");
        foreach (var (what, action) in new (string, Action)[] { ("whole HVP", () => hessian.Apply(v)), ($"recorded sweep of {blockName} ({block.Dimension} parameters)", () => recorded.Apply(u)) })
        {
            action(); // warm-up
            Console.WriteLine();
            ModelTables.PrintProfile(what, action, 20);
        }
        return 0;
    }

    /// <summary>The two reports interleaved (<paramref name="rounds"/> rounds), then a block product per parameter against a whole product.</summary>
    public static void PerLayer(int batch, int topk, int iterations, int probes, int rounds)
    {
        Console.WriteLine($"threads: {Parallelism.MaxThreads}");
        var rng = new RandomGenerator(0);
        var model = new ResNet(rng);
        var data = new Models.Data.Dataset(rng.Normal(new Shape(batch, 1, 28, 28)), rng.Integers(new Shape(batch), 10));
        long wholeProducts = 0, layerProducts = 0;
        Curvature.Lab.Spectrum.Report? layered = null;
        var ms = Timing.InterleavedMedianMs(
        [
            () => { wholeProducts = 0; Curvature.Lab.Spectrum.Run(model, data, "ce", true, topk, iterations, probes, batch, new RandomGenerator(1), products: _ => wholeProducts++); },
            () =>
            {
                layerProducts = 0;
                layered = Curvature.Lab.Spectrum.Run(model, data, "ce", true, topk, iterations, probes, batch, new RandomGenerator(1), products: _ => layerProducts++, extras: new Curvature.Lab.Spectrum.Extras(PerLayer: []));
            },
        ], warmup: 0, repeats: rounds);

        // One product of each parameter's block (tangents from its layer on) against one whole product; and, as the
        // per-layer report makes them, recorded once and then swept transposed (the tangent passes alone).
        var named = model.NamedParameters();
        var hessian = new HessianOperator(Loss.Function(model, "ce", data.Inputs, data.Labels, training: true), named.Select(p => p.Parameter.Data).ToArray());
        var v = rng.Normal(new Shape((int)hessian.Dimension));
        double wholeMs = Timing.MedianMs(() => hessian.Apply(v), warmup: 1, repeats: 3);
        var blockMs = new double[named.Count];
        var recordMs = new double[named.Count];
        var sweepMs = new double[named.Count];
        for (int b = 0; b < named.Count; b++)
        {
            var block = hessian.Block([b]);
            var u = rng.Normal(new Shape((int)block.Dimension));
            blockMs[b] = Timing.MedianMs(() => block.Apply(u), warmup: 1, repeats: 3);
            ILinearOperator? recorded = null;
            recordMs[b] = Timing.MedianMs(() => { recorded = block.Recorded(); recorded.Apply(u); }, warmup: 0, repeats: 1);
            sweepMs[b] = Timing.MedianMs(() => recorded!.Apply(u), warmup: 1, repeats: 3);
        }
        var layers = layered!.PerLayer;
        double blockWork = layers.Select((l, b) => l.Iterations * blockMs[b]).Sum();
        double recordedWork = layers.Select((l, b) => recordMs[b] + (l.Iterations - 1) * sweepMs[b]).Sum();
        int blockIterations = layers.Sum(l => l.Iterations);

        Console.WriteLine();
        Console.WriteLine($"| ResNet-20, Fashion-MNIST shapes, batch {batch}, training mode, k {topk}, {iterations} iterations, {probes} SLQ probes, float32 | s | products | ratio | target |");
        Console.WriteLine("|---|---|---|---|---|");
        Console.WriteLine($"| whole-model report | {F(ms[0] / 1000)} | {wholeProducts} | 1 | |");
        Console.WriteLine($"| with `--per-layer` ({layers.Count} parameter blocks) | {F(ms[1] / 1000)} | {layerProducts} | {F(ms[1] / ms[0])} | ≤ 1.5 |");
        Console.WriteLine();
        Console.WriteLine($"| one product | ms | ratio to a whole HVP |");
        Console.WriteLine("|---|---|---|");
        Console.WriteLine($"| whole HVP | {F(wholeMs)} | 1 |");
        Console.WriteLine($"| block product, mean over the {named.Count} parameters | {F(blockMs.Average())} | {F(blockMs.Average() / wholeMs)} |");
        Console.WriteLine($"| block product, cheapest ({named[Array.IndexOf(blockMs, blockMs.Min())].Name}) | {F(blockMs.Min())} | {F(blockMs.Min() / wholeMs)} |");
        Console.WriteLine($"| block product, dearest ({named[Array.IndexOf(blockMs, blockMs.Max())].Name}) | {F(blockMs.Max())} | {F(blockMs.Max() / wholeMs)} |");
        Console.WriteLine($"| recording a block's product, mean | {F(recordMs.Average())} | {F(recordMs.Average() / wholeMs)} |");
        Console.WriteLine($"| recorded block sweep, mean | {F(sweepMs.Average())} | {F(sweepMs.Average() / wholeMs)} |");
        Console.WriteLine($"| recorded block sweep, cheapest ({named[Array.IndexOf(sweepMs, sweepMs.Min())].Name}) | {F(sweepMs.Min())} | {F(sweepMs.Min() / wholeMs)} |");
        Console.WriteLine($"| recorded block sweep, dearest ({named[Array.IndexOf(sweepMs, sweepMs.Max())].Name}) | {F(sweepMs.Max())} | {F(sweepMs.Max() / wholeMs)} |");
        Console.WriteLine();
        Console.WriteLine($"Block Lanczos: {blockIterations} iterations over {layers.Count} blocks (each stops at ‖Hy − θy‖ ≤ 1e-4·|θ| or min({iterations}, size)); "
            + $"as direct products they would cost {F(blockWork / 1000)} s, {F(blockWork / wholeMs)} whole-HVP equivalents; recorded (one recording, then sweeps) "
            + $"{F(recordedWork / 1000)} s, {F(recordedWork / wholeMs)} equivalents, against the whole report's {wholeProducts} products.");
    }
}
