using Curvature.Autodiff;
using Curvature.Engine;
using Curvature.Models;
using Curvature.Models.Layers;

namespace Curvature.Spectral;

/// <summary>
/// K-FAC (Martens and Grosse 2015): the Fisher of each Linear layer approximated by a Kronecker product
/// A ⊗ G, with A = E[ã ãᵀ] over the layer's inputs ã = [a; 1] (the 1 for the bias) and G = E[g gᵀ] over the
/// gradients of the per-example loss with respect to the layer's outputs. Convolutions follow KFC (Grosse and
/// Martens 2016): ã is an input patch (an im2col column), A = E_n[Σ_t ã_t ã_tᵀ] sums over output positions t and
/// G = E_n[(1/|T|) Σ_t g_t g_tᵀ] averages over them (spatially uncorrelated, homogeneous derivatives). A
/// sequence model's positions count as examples. Parameters outside Linear and Conv2d layers (BatchNorm,
/// LayerNorm, embeddings) get a zero block and are listed in <see cref="Uncovered"/>. Labels are sampled from the model's
/// predictive distribution (the true Fisher, not the empirical one): categorical for cross-entropy, Gaussian
/// N(output, I) for the MSE of MODELS.md. As an operator on the flattened parameters, a layer's block [W | b]
/// maps to (G + √λ I)·[W | b]·(A + √λ I) (damping λ); the top eigenvalue of the undamped approximation is
/// max over layers of λmax(A)·λmax(G).
/// </summary>
public sealed class KroneckerFactoredCurvature : ILinearOperator
{
    private readonly IReadOnlyList<Parameter> parameters;
    private readonly List<(int Weight, int Bias, NdArray A, NdArray G)> layers = [];
    private readonly List<int> uncovered = [];

    /// <summary>Indices (in the parameter list) of parameters no Linear or Conv2d layer owns: their blocks are zero.</summary>
    public IReadOnlyList<int> Uncovered => uncovered;

    private KroneckerFactoredCurvature(IReadOnlyList<Parameter> parameters, double damping)
    {
        this.parameters = parameters;
        Damping = damping;
        Dimension = parameters.Sum(p => p.Shape.Size);
        DType = parameters[0].Value.DType;
        Device = parameters[0].Value.Device;
    }

    /// <summary>λ.</summary>
    public double Damping { get; }

    /// <inheritdoc/>
    public long Dimension { get; }

    /// <inheritdoc/>
    public DType DType { get; }

    /// <inheritdoc/>
    public Device Device { get; }

    /// <summary>The targets sampled from the model's predictive distribution (int64 labels for ce, floats for mse).</summary>
    public NdArray? SampledTargets { get; private set; }

    /// <summary>The factors (A, G) of each Linear layer, in forward order.</summary>
    public IReadOnlyList<(NdArray A, NdArray G)> Factors => layers.Select(l => (l.A, l.G)).ToArray();

    /// <summary>
    /// Computes the factors on a batch: one pass records each Linear and Conv2d layer's input and output shape, a
    /// second differentiates the loss of labels sampled from the model with respect to zero perturbations of the
    /// layers' outputs, which gives the per-example (per-position) output gradients.
    /// </summary>
    public static KroneckerFactoredCurvature Compute(Module model, string loss, NdArray inputs, RandomGenerator rng, double damping = 0, bool training = false)
    {
        var ps = model.Parameters();
        var k = new KroneckerFactoredCurvature(ps, damping);
        var values = ps.Select(p => (Tensor)p.Value).ToArray();

        // Pass 1: record each layer's input and output shape, and the outputs for sampling labels.
        var taps = new List<(Module Layer, NdArray Input, Shape Output)>();
        var outputs = model.Forward(new Bindings(ps, values, training)
        {
            Tap = (m, x, y) => { taps.Add((m, x.Data, y.Shape)); return y; },
        }, inputs).Data;
        var owned = new HashSet<Parameter>(ReferenceEqualityComparer.Instance);
        foreach (var (layer, _, _) in taps)
            foreach (var p in Owned(layer)) owned.Add(p);
        for (int i = 0; i < ps.Count; i++) if (!owned.Contains(ps[i])) k.uncovered.Add(i);

        // Sampled targets: the loss is Σₙ −log p(ŷₙ | xₙ), so its gradient rows are the per-example gradients.
        var rows = outputs.Reshape(-1, outputs.Shape[^1]);
        int n = rows.Shape[0];
        var sampled = loss switch
        {
            "ce" => SampleCategorical(rows, rng),
            "mse" => rows + rng.Normal(rows.Shape, dtype: rows.DType, device: rows.Device),
            _ => throw new ArgumentException($"kfac: loss '{loss}' is not one of mse, ce."),
        };
        k.SampledTargets = sampled;
        Tensor SummedLoss(Tensor o)
        {
            var flat = o.Reshape(-1, o.Shape[^1]);
            return (loss == "ce" ? Losses.CrossEntropy(flat, sampled) : Losses.MeanSquaredErrorTo(flat, sampled)) * n;
        }
        var zeros = taps.Select(t => (Tensor)NdArray.Zeros(t.Output, outputs.DType, outputs.Device)).ToArray();
        var grads = Derivatives.Grad(eps =>
        {
            int i = 0;
            var o = model.Forward(new Bindings(ps, values, training) { Tap = (m, x, y) => y + eps[i++] }, inputs);
            return SummedLoss(o);
        }, zeros);

        for (int l = 0; l < taps.Count; l++)
        {
            var (layer, input, _) = taps[l];
            var g = grads[l].Data;
            switch (layer)
            {
                case Linear linear:
                {
                    var aTilde = linear.Bias is null ? input : NdArray.Concat([input, NdArray.Ones(new Shape(input.Shape[0], 1), input.DType, input.Device)], 1);
                    int count = input.Shape[0];
                    k.layers.Add((IndexOf(ps, linear.Weight), linear.Bias is null ? -1 : IndexOf(ps, linear.Bias),
                        aTilde.MatMul(aTilde, transA: true) * (1.0 / count), g.MatMul(g, transA: true) * (1.0 / count)));
                    break;
                }
                case Conv2d conv:
                {
                    int examples = input.Shape[0], o = conv.Weight.Shape[0], kh = conv.Weight.Shape[2], kw = conv.Weight.Shape[3];
                    var cols = input.Im2Col(kh, kw, conv.Stride, conv.Padding);                      // [K, N·T]
                    int positions = cols.Shape[1] / examples;
                    var aTilde = conv.Bias is null ? cols : NdArray.Concat([cols, NdArray.Ones(new Shape(1, cols.Shape[1]), cols.DType, cols.Device)], 0);
                    var gRows = g.Permute(1, 0, 2, 3).Reshape(o, -1);                               // [O, N·T]
                    k.layers.Add((IndexOf(ps, conv.Weight), conv.Bias is null ? -1 : IndexOf(ps, conv.Bias),
                        aTilde.MatMul(aTilde, transB: true) * (1.0 / examples), gRows.MatMul(gRows, transB: true) * (1.0 / ((double)examples * positions))));
                    break;
                }
            }
        }
        return k;
    }

    private static IEnumerable<Parameter> Owned(Module layer) => layer switch
    {
        Linear l => l.Bias is null ? [l.Weight] : [l.Weight, l.Bias],
        Conv2d c => c.Bias is null ? [c.Weight] : [c.Weight, c.Bias],
        _ => [],
    };

    private static int IndexOf(IReadOnlyList<Parameter> ps, Parameter p)
    {
        for (int i = 0; i < ps.Count; i++) if (ReferenceEquals(ps[i], p)) return i;
        throw new ArgumentException("kfac: a layer's parameter is not among the model's parameters.");
    }

    private static NdArray SampleCategorical(NdArray logits, RandomGenerator rng)
    {
        int n = logits.Shape[0], c = logits.Shape[1];
        var p = logits.LogSoftmax().ToDoubleArray();
        var u = rng.Uniform(new Shape(n), dtype: DType.Float64).ToArray<double>();
        var y = new long[n];
        for (int i = 0; i < n; i++)
        {
            double acc = 0;
            y[i] = c - 1;
            for (int j = 0; j < c; j++)
            {
                acc += Math.Exp(p[i * c + j]);
                if (u[i] < acc) { y[i] = j; break; }
            }
        }
        return NdArray.FromArray(y, new Shape(n), logits.Device);
    }

    /// <inheritdoc/>
    public NdArray Apply(NdArray v)
    {
        var parts = Vectors.Unflatten(v, parameters.Select(p => p.Shape).ToArray());
        var result = parts.Select(p => p.ZerosLike()).ToArray();
        double root = Math.Sqrt(Damping);
        foreach (var (w, b, a, g) in layers)
        {
            // A weight as [out, in] (a convolution's [O, C, kh, kw] as [O, C·kh·kw]), the bias as one more column.
            var shape = parameters[w].Shape;
            var weight = parts[w].Reshape(shape[0], -1);
            int inFeatures = weight.Shape[1];
            var block = b < 0 ? weight : NdArray.Concat([weight, parts[b].Reshape(-1, 1)], 1);
            var gv = g.MatMul(block) + (root > 0 ? block * root : block.ZerosLike());
            var gva = gv.MatMul(a) + (root > 0 ? gv * root : gv.ZerosLike());
            result[w] = (b < 0 ? gva : gva.Slice(1, 0, inFeatures)).Reshape(shape);
            if (b >= 0) result[b] = gva.Slice(1, inFeatures, 1).Reshape(-1);
        }
        return Vectors.Flatten(result);
    }

    /// <summary>max over layers of λmax(A)·λmax(G) (undamped), each factor's top eigenvalue by Lanczos.</summary>
    public double TopEigenvalue()
    {
        if (layers.Count == 0) throw new NotSupportedException("kfac: the model has no Linear or Conv2d layer to factor.");
        double best = double.NegativeInfinity;
        foreach (var (_, _, a, g) in layers)
        {
            double la = Lanczos.Run(new DenseOperator(a), Math.Min(30, a.Shape[0]), rng: new RandomGenerator(1)).Values[0];
            double lg = Lanczos.Run(new DenseOperator(g), Math.Min(30, g.Shape[0]), rng: new RandomGenerator(2)).Values[0];
            best = Math.Max(best, la * lg);
        }
        return best;
    }
}
