using Curvature.Autodiff;
using Curvature.Engine;
using Curvature.Models;

namespace Curvature.Spectral;

/// <summary>
/// The gradient noise of a batch, measured exactly. With per-example losses ℓᵢ (mean = the batch loss L; with
/// training-mode BatchNorm, ℓᵢ is example i's term of the batch objective, so the examples are coupled and gᵢ
/// differentiates through the batch statistics), gᵢ = ∇ℓᵢ, ḡ = ∇L and Σ = (1/(n − 1))·Σᵢ (gᵢ − ḡ)(gᵢ − ḡ)ᵀ:
/// <list type="bullet">
/// <item>vᵀΣv for any direction v from one JVP of the vector ℓ along v, which gives every gᵢᵀv at once (the mean of
/// them is ḡᵀv exactly);</item>
/// <item>tr Σ exactly from the per-example gradients (one reverse pass per example of a batch of one when the
/// examples are independent; one VJP of ℓ with cotangent eᵢ each when BatchNorm couples them), or by Hutchinson
/// (E zᵀΣz over Rademacher z, one JVP each) with its standard error;</item>
/// <item>the noise scale tr Σ / ‖ḡ‖² (McCandlish et al. 2018, "An Empirical Model of Large-Batch Training");</item>
/// <item>the gradient sharpness ḡᵀHḡ/‖ḡ‖² and the batch sharpness E_B[g_Bᵀ H_B g_B / ‖g_B‖²] over minibatches B
/// drawn from the batch (Andreyev and Beneventano 2024, "Edge of Stochastic Stability").</item>
/// </list>
/// </summary>
public sealed class GradientNoise
{
    private readonly Module model;
    private readonly string loss;
    private readonly NdArray inputs, labels;
    private readonly bool training;
    private readonly Tensor[] w;
    private readonly Func<Tensor[], Tensor> perExample, batchLoss;
    private readonly IExampleShards? shards;
    private readonly int local, start;
    private readonly double share;

    /// <summary>
    /// The noise of <paramref name="model"/>'s <paramref name="lossName"/> on a batch, in training or evaluation mode.
    /// With <paramref name="shards"/>, <paramref name="inputs"/> and <paramref name="labels"/> are this replica's
    /// examples of a batch split over replicas, and every figure is the whole batch's: means and sums over examples
    /// are summed over the replicas (every replica calls every method, in the same order). Examples coupled by
    /// training-mode BatchNorm cannot be split so.
    /// </summary>
    public GradientNoise(Module model, string lossName, NdArray inputs, NdArray labels, bool training, IExampleShards? shards = null)
    {
        this.model = model;
        loss = lossName;
        this.inputs = inputs;
        this.labels = labels;
        this.training = training;
        this.shards = shards;
        local = inputs.Shape[0];
        start = shards?.Start ?? 0;
        Count = shards?.Total ?? local;
        share = local / (double)Count;
        if (Count < 2) throw new ArgumentException($"gradient noise: a batch of {Count} example has no spread; give at least 2.");
        w = model.Parameters().Select(p => (Tensor)p.Data).ToArray();
        perExample = Loss.PerExampleFunction(model, lossName, inputs, labels, training);
        batchLoss = Loss.Function(model, lossName, inputs, labels, training);
        // Training-mode BatchNorm normalizes by the batch's own statistics: every ℓᵢ depends on every example.
        Coupled = training && model.StateDict().Any(t => t.Name.EndsWith("running_mean", StringComparison.Ordinal));
        if (Coupled && shards is not null)
            throw new ArgumentException("gradient noise: training-mode BatchNorm couples every example's loss to the whole batch, which a split over replicas does not see; measure in evaluation mode, or in one process.");
    }

    /// <summary>Examples in the batch (over every replica).</summary>
    public int Count { get; }

    /// <summary>Σ over replicas of <paramref name="values"/> (themselves without replicas).</summary>
    private double[] Reduce(double[] values) => shards is null ? values : shards.Sum(values);

    /// <summary>Σ over replicas of weight·arrays, as arrays of the same shapes, dtypes and device.</summary>
    private NdArray[] Reduce(IReadOnlyList<NdArray> arrays, double weight) => shards is null ? arrays.ToArray() : shards.Sum(arrays, weight);

    /// <summary>Whether the examples' losses depend on one another (training-mode BatchNorm).</summary>
    public bool Coupled { get; }

    /// <summary>The batch loss and its gradient ḡ (as parameter arrays).</summary>
    public (double Loss, NdArray[] Gradient) LossAndGradient()
    {
        var (value, grad) = Derivatives.ValueAndGrad(batchLoss, w);
        if (shards is null) return (value.ToScalar(), grad.Select(g => g.Data).ToArray());
        return (Reduce([share * value.ToScalar()])[0], Reduce(grad.Select(g => g.Data).ToArray(), share));
    }

    /// <summary>Every example's directional derivative gᵢᵀv along <paramref name="v"/> (parameter arrays), from one JVP.</summary>
    public double[] Directional(IReadOnlyList<NdArray> v)
    {
        var (_, tangent) = Derivatives.Jvp(perExample, w, v.Select(a => (Tensor)a).ToArray());
        var mine = tangent.Data.Cast(DType.Float64).ToArray<double>();
        if (shards is null) return mine;
        // Each replica fills its own examples' places; the sum over replicas is the whole batch's vector.
        var all = new double[Count];
        mine.CopyTo(all, start);
        return Reduce(all);
    }

    /// <summary>vᵀΣv = (1/(n − 1))·Σᵢ (gᵢᵀv − ḡᵀv)² along <paramref name="v"/>, exactly (one JVP).</summary>
    public double VarianceAlong(IReadOnlyList<NdArray> v) => SampleVariance(Directional(v));

    /// <summary>tr Σ exactly, from every example's gradient (see the class summary for the cost); <paramref name="mean"/> is ḡ when the caller has it.</summary>
    public double TraceExact(IReadOnlyList<NdArray>? mean = null)
    {
        mean ??= LossAndGradient().Gradient;
        if (SquaredNormSum() is { } squares)
        {
            // Σᵢ ‖gᵢ − ḡ‖² = Σᵢ ‖gᵢ‖² − n‖ḡ‖², since Σᵢ gᵢ = n·ḡ.
            double meanSquare = mean.Sum(m => m.Dot(m));
            return (Reduce([squares])[0] - Count * meanSquare) / (Count - 1);
        }
        double sum = 0;
        for (int i = 0; i < local; i++)
        {
            var g = ExampleGradient(i);
            for (int j = 0; j < g.Length; j++)
            {
                var d = g[j] - mean[j];
                sum += d.Dot(d);
            }
        }
        return Reduce([sum])[0] / (Count - 1);
    }

    /// <summary>
    /// Σᵢ ‖gᵢ‖² over this replica's examples in one reverse pass, when every parameter belongs to a Linear layer that
    /// sees each example as one row (the MLP): there example i's gradient of a layer is δᵢ·ãᵢᵀ (δᵢ its output
    /// gradient, ãᵢ its input with a 1 for the bias), whose squared norm is ‖δᵢ‖²·‖ãᵢ‖² (Goodfellow 2015, "Efficient
    /// per-example gradient computations"). Null for any other model (each example then takes its own reverse pass).
    /// </summary>
    private double? SquaredNormSum()
    {
        if (LinearFactors() is not { } layers) return null;
        double total = 0;
        foreach (var (_, input, delta, bias) in layers)
        {
            var dd = (delta * delta).Sum([1]).Cast(DType.Float64).ToArray<double>();
            var aa = (input * input).Sum([1]).Cast(DType.Float64).ToArray<double>();
            for (int i = 0; i < local; i++) total += dd[i] * (aa[i] + (bias ? 1 : 0));
        }
        return total;
    }

    /// <summary>
    /// When every parameter belongs to a Linear layer that sees each example as one row (the MLP) and the examples are
    /// independent, each layer's input rows aᵢ and output gradients δᵢ (rows of the gradient of Σᵢ ℓᵢ at zero
    /// perturbations of the layer's outputs, as K-FAC takes them), with the index of its weight in the parameter list
    /// and whether it has a bias (the next parameter): example i's gradient of the layer is δᵢ·aᵢᵀ and its bias's δᵢ.
    /// Null for any other model. One forward and one reverse pass over the batch.
    /// </summary>
    private List<(int Weight, NdArray Input, NdArray Delta, bool Bias)>? LinearFactors()
    {
        if (Coupled) return null;
        var ps = model.Parameters();
        var values = ps.Select(p => (Tensor)p.Data).ToArray();
        var taps = new List<(Module Layer, NdArray Input, Shape Output)>();
        model.Forward(new Bindings(ps, values, training) { Tap = (m, x, y) => { taps.Add((m, x.Data, y.Shape)); return y; } }, inputs);
        var owned = new HashSet<Parameter>(ReferenceEqualityComparer.Instance);
        foreach (var (layer, input, output) in taps)
        {
            if (layer is not Models.Layers.Linear linear || input.Rank != 2 || input.Shape[0] != local || output[0] != local) return null;
            if (!owned.Add(linear.Weight) || linear.Bias is { } b && !owned.Add(b)) return null;
        }
        if (owned.Count != ps.Count) return null;
        var index = new Dictionary<Parameter, int>(ReferenceEqualityComparer.Instance);
        for (int k = 0; k < ps.Count; k++) index[ps[k]] = k;
        var zeros = taps.Select(t => (Tensor)NdArray.Zeros(t.Output, w[0].DType, w[0].Data.Device)).ToArray();
        var deltas = Derivatives.Grad(eps =>
        {
            int i = 0;
            var o = model.Forward(new Bindings(ps, values, training) { Tap = (m, x, y) => y + eps[i++] }, inputs);
            return Loss.PerExample(loss, o, labels).Sum();
        }, zeros);
        var layers = new List<(int Weight, NdArray Input, NdArray Delta, bool Bias)>();
        for (int l = 0; l < taps.Count; l++)
        {
            var linear = (Models.Layers.Linear)taps[l].Layer;
            int k = index[linear.Weight];
            // The rows' layout puts a bias right after its weight; a model listing them otherwise takes the general path.
            if (linear.Bias is { } b && index[b] != k + 1) return null;
            layers.Add((k, taps[l].Input, deltas[l].Data, linear.Bias is not null));
        }
        return layers;
    }

    /// <summary>
    /// Every example's gradient gᵢ = ∇ℓᵢ as rows of a matrix, <paramref name="chunk"/> examples at a time (to bound the
    /// memory: a chunk holds chunk × parameters values; 0 takes as many as fit in 1 MiB per thread of
    /// <see cref="Kernels.Parallelism.MaxThreads"/>, at least one, so that the rows stay in the cores' L2 caches for a
    /// consumer that reads each chunk at once): each item is the first example's index (this replica's) and a
    /// [count, parameters] array whose row r is example start + r's gradient flattened in parameter order (as
    /// <see cref="Vectors.Flatten"/>). The array is overwritten by the next chunk: copy what must outlive it. For the
    /// MLP (every parameter a Linear layer's, independent examples) one reverse pass over the batch gives every row as
    /// the outer products δᵢ·aᵢᵀ (Goodfellow 2015); otherwise each row takes a reverse pass of its own
    /// (<see cref="ExampleGradient"/>).
    /// </summary>
    public IEnumerable<(int Start, NdArray Gradients)> ExampleGradients(int chunk = 0)
    {
        if (chunk < 0) throw new ArgumentOutOfRangeException(nameof(chunk), chunk, "a chunk holds at least one example (0: as many as fit in 1 MiB per thread).");
        int size = checked((int)w.Sum(p => p.Data.Size));
        if (chunk == 0) chunk = (int)Math.Clamp(((long)Kernels.Parallelism.MaxThreads << 20) / ((long)size * w[0].DType.Size()), 1, int.MaxValue);
        chunk = Math.Min(chunk, local);
        var layers = LinearFactors();
        var dtype = w[0].DType;
        bool host = w[0].Data.Device is CpuDevice && dtype is DType.Float32 or DType.Float64;
        var buffer = layers is not null && host ? NdArray.Zeros(new Shape(chunk, size), dtype) : null;
        var offsets = new int[w.Length + 1];
        for (int k = 0; k < w.Length; k++) offsets[k + 1] = offsets[k] + (int)w[k].Data.Size;
        for (int first = 0; first < local; first += chunk)
        {
            int count = Math.Min(chunk, local - first);
            NdArray rows;
            if (layers is null)
                rows = NdArray.Concat(Enumerable.Range(first, count).Select(i => Vectors.Flatten(ExampleGradient(i)).Reshape(1, size)).ToArray(), 0);
            else if (buffer is not null)
            {
                rows = NdArray.FromStorage(buffer.Storage, new Shape(count, size), buffer.Offset);
                if (dtype is DType.Float32) OuterRows<float>(layers, offsets, first, rows);
                else OuterRows<double>(layers, offsets, first, rows);
            }
            else
            {
                // Any device: the outer products as broadcast products, laid out by concatenation.
                var parts = new List<NdArray>();
                foreach (var (_, input, delta, bias) in layers)
                {
                    int outputs = delta.Shape[1], width = input.Shape[1];
                    var d = delta.Rows(first, count);
                    parts.Add((d.Reshape(count, outputs, 1) * input.Rows(first, count).Reshape(count, 1, width)).Reshape(count, outputs * width));
                    if (bias) parts.Add(d);
                }
                rows = NdArray.Concat(parts, 1);
            }
            yield return (first, rows);
        }
    }

    /// <summary>Rows δᵢ·aᵢᵀ (and δᵢ for a bias) of examples first … first + rows − 1 on the CPU, one scaled copy of aᵢ per output.</summary>
    private static void OuterRows<T>(List<(int Weight, NdArray Input, NdArray Delta, bool Bias)> layers, int[] offsets, int first, NdArray rows)
        where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        int size = rows.Shape[1];
        // One row per work item: each row is written by one thread, whatever the thread count.
        Kernels.Parallelism.For(rows.Shape[0], r =>
        {
            var target = rows.Span<T>().Slice(r * size, size);
            foreach (var (k, input, delta, bias) in layers)
            {
                int outputs = delta.Shape[1], width = input.Shape[1];
                var ai = input.Span<T>().Slice((first + r) * width, width);
                var di = delta.Span<T>().Slice((first + r) * outputs, outputs);
                var block = target.Slice(offsets[k], outputs * width);
                for (int o = 0; o < outputs; o++) System.Numerics.Tensors.TensorPrimitives.Multiply(ai, di[o], block.Slice(o * width, width));
                if (bias) di.CopyTo(target.Slice(offsets[k + 1], outputs));
            }
        });
    }

    /// <summary>tr Σ by Hutchinson: the mean of zᵀΣz over <paramref name="probes"/> Rademacher directions z (one JVP each), with its standard error.</summary>
    public Estimate TraceHutchinson(int probes, RandomGenerator rng)
    {
        if (probes < 2) throw new ArgumentOutOfRangeException(nameof(probes), probes, "Hutchinson's standard error needs at least 2 probes.");
        var samples = new double[probes];
        for (int k = 0; k < probes; k++)
            samples[k] = VarianceAlong(w.Select(p => rng.Rademacher(p.Shape, p.DType, p.Data.Device)).ToArray());
        return Summarize(samples);
    }

    /// <summary>Example <paramref name="i"/>'s gradient gᵢ = ∇ℓᵢ (parameter arrays); with replicas, the i-th of this replica's examples.</summary>
    public NdArray[] ExampleGradient(int i)
    {
        if (i < 0 || i >= local) throw new ArgumentOutOfRangeException(nameof(i), i, $"the batch holds {local} examples{(shards is null ? "" : " on this replica")}.");
        if (!Coupled)
        {
            // Independent examples: the loss of a batch of one is ℓᵢ.
            var one = Loss.Function(model, loss, inputs.Rows(i, 1), labels.Rows(i, 1), training);
            return Derivatives.Grad(one, w).Select(g => g.Data).ToArray();
        }
        var e = new double[local];
        e[i] = 1;
        var (_, cotangents) = Derivatives.Vjp(perExample, w, NdArray.FromArray(e, new Shape(local)).Cast(w[0].DType));
        return cotangents.Select(c => c.Data).ToArray();
    }

    /// <summary>The gradient sharpness ḡᵀHḡ / ‖ḡ‖² of the batch loss (one HVP).</summary>
    public double GradientSharpness()
    {
        var (ghg, gg) = Quadratic(batchLoss, share);
        return gg > 0 ? ghg / gg : double.NaN;
    }

    /// <summary>
    /// The batch sharpness: the mean over <paramref name="samples"/> minibatches B of <paramref name="size"/>
    /// examples drawn without replacement from the batch of g_Bᵀ H_B g_B / ‖g_B‖² (H_B and g_B of the minibatch's
    /// own loss, in this mode: training-mode BatchNorm uses the minibatch's statistics), with its standard error.
    /// </summary>
    public Estimate BatchSharpness(int size, int samples, RandomGenerator rng) => BatchSharpnessBoth(size, samples, rng).MeanOfRatios;

    /// <summary>
    /// Both readings of the batch sharpness from the same minibatches: the mean of the Rayleigh quotients
    /// E[g_BᵀH_Bg_B / ‖g_B‖²] (<see cref="BatchSharpness"/>) and the ratio of means E[g_BᵀH_Bg_B] / E[‖g_B‖²], which
    /// weighs each minibatch by its gradient's squared norm (the form in which the quotient enters the expected
    /// one-step change of the loss, E[L(w − ηg_B)] ≈ L − ηE[ḡᵀg_B] + ½η²E[g_BᵀHg_B]). The ratio's standard error is the
    /// jackknife's (leave one minibatch out); NaN with one minibatch.
    /// </summary>
    public BatchSharpnessEstimate BatchSharpnessBoth(int size, int samples, RandomGenerator rng)
    {
        if (size < 1 || size > Count) throw new ArgumentOutOfRangeException(nameof(size), size, $"a minibatch takes 1 to {Count} examples (the batch).");
        if (samples < 1) throw new ArgumentOutOfRangeException(nameof(samples), samples, "batch sharpness needs at least one minibatch.");
        var quotients = new double[samples];
        var curvature = new double[samples];
        var norms = new double[samples];
        for (int k = 0; k < samples; k++)
        {
            // Drawn from the whole batch (every replica draws the same); each replica contributes its members of it.
            var pick = Models.Data.Dataset.Permutation(Count, rng)[..size];
            var mine = pick.Where(i => i >= start && i < start + local).Select(i => i - start).ToArray();
            (curvature[k], norms[k]) = mine.Length == 0 ? Quadratic(null, 0)
                : Quadratic(Loss.Function(model, loss, SelectRows(inputs, mine), SelectRows(labels, mine), training), mine.Length / (double)size);
            quotients[k] = norms[k] > 0 ? curvature[k] / norms[k] : double.NaN;
        }
        var meanOfRatios = samples == 1 ? new Estimate(quotients[0], double.NaN, 1) : Summarize(quotients);
        double sumC = curvature.Sum(), sumN = norms.Sum();
        double ratio = sumN > 0 ? sumC / sumN : double.NaN;
        double stderr = double.NaN;
        if (samples > 1)
        {
            var leaveOut = Enumerable.Range(0, samples).Select(k => (sumC - curvature[k]) / (sumN - norms[k])).ToArray();
            double m = leaveOut.Average();
            stderr = Math.Sqrt((samples - 1.0) / samples * leaveOut.Sum(x => (x - m) * (x - m)));
        }
        return new BatchSharpnessEstimate(meanOfRatios, new Estimate(ratio, stderr, samples));
    }

    /// <summary>
    /// gᵀHg and ‖g‖² of a loss at the current weights (one gradient, one HVP). With replicas, <paramref name="f"/> is
    /// this replica's part of the loss, weighing <paramref name="weight"/> in it (null: none of it), and g and Hg are
    /// the weighted sums over replicas, the HVP taken along the whole g.
    /// </summary>
    private (double Curvature, double SquaredNorm) Quadratic(Func<Tensor[], Tensor>? f, double weight)
    {
        NdArray[] Zeros() => w.Select(p => p.Data.ZerosLike()).ToArray();
        var g = Reduce(f is null ? Zeros() : Derivatives.Grad(f, w).Select(t => t.Data).ToArray(), weight);
        var hg = Reduce(f is null ? Zeros() : Derivatives.Hvp(f, w, g.Select(a => (Tensor)a).ToArray()).Product.Select(t => t.Data).ToArray(), weight);
        double gg = 0, ghg = 0;
        for (int j = 0; j < g.Length; j++) { gg += g[j].Dot(g[j]); ghg += g[j].Dot(hg[j]); }
        return (ghg, gg);
    }

    /// <summary>Rows of an array picked by index along its first axis (any trailing shape).</summary>
    private static NdArray SelectRows(NdArray a, long[] rows)
    {
        int width = (int)(a.Size / Math.Max(1, a.Shape[0]));
        var idx = NdArray.FromArray(rows, new Shape(rows.Length)).To(a.Device);
        return a.Reshape(a.Shape[0], width).Gather(idx).Reshape([rows.Length, .. a.Shape.Skip(1)]);
    }

    private static double SampleVariance(double[] d)
    {
        double mean = d.Average(), s = 0;
        foreach (var x in d) s += (x - mean) * (x - mean);
        return s / (d.Length - 1);
    }

    private static Estimate Summarize(double[] samples)
    {
        double mean = samples.Average();
        double var = samples.Sum(x => (x - mean) * (x - mean)) / (samples.Length - 1);
        return new Estimate(mean, Math.Sqrt(var / samples.Length), samples.Length);
    }
}

/// <summary>How <see cref="GradientNoise"/>'s batch is split over replicas.</summary>
public interface IExampleShards
{
    /// <summary>The index, in the whole batch, of this replica's first example (its examples are contiguous).</summary>
    int Start { get; }
    /// <summary>Examples in the whole batch.</summary>
    int Total { get; }
    /// <summary>The element-wise sum of <paramref name="values"/> over the replicas (a collective).</summary>
    double[] Sum(double[] values);
    /// <summary>Σ over the replicas of <paramref name="weight"/>·each array, of the same shapes, dtypes and device (a collective).</summary>
    NdArray[] Sum(IReadOnlyList<NdArray> arrays, double weight);
}

/// <summary>The batch sharpness read two ways from the same minibatches (<see cref="GradientNoise.BatchSharpnessBoth"/>).</summary>
/// <param name="MeanOfRatios">E[g_BᵀH_Bg_B / ‖g_B‖²], with the standard error of the mean.</param>
/// <param name="RatioOfMeans">E[g_BᵀH_Bg_B] / E[‖g_B‖²], with the jackknife's standard error.</param>
public sealed record BatchSharpnessEstimate(Estimate MeanOfRatios, Estimate RatioOfMeans);
