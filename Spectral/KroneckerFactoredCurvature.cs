using Curvature.Autodiff;
using Curvature.Engine;
using Curvature.Models;
using Curvature.Models.Layers;

namespace Curvature.Spectral;

/// <summary>
/// K-FAC (Martens and Grosse 2015): the Fisher of each Linear layer approximated by a Kronecker product
/// A ⊗ G, with A = E[ã ãᵀ] over the layer's inputs ã = [a; 1] (the 1 for the bias) and G = E[g gᵀ] over the
/// gradients of the per-example loss with respect to the layer's outputs. Labels are sampled from the model's
/// predictive distribution (the true Fisher, not the empirical one): categorical for cross-entropy, Gaussian
/// N(output, I) for the MSE of MODELS.md. As an operator on the flattened parameters, a layer's block [W | b]
/// maps to (G + √λ I)·[W | b]·(A + √λ I) (damping λ); the top eigenvalue of the undamped approximation is
/// max over layers of λmax(A)·λmax(G).
/// </summary>
public sealed class KroneckerFactoredCurvature : ILinearOperator
{
    private readonly IReadOnlyList<Parameter> parameters;
    private readonly List<(int Weight, int Bias, NdArray A, NdArray G)> layers = [];

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
    /// Computes the factors on a batch. Every parameter of the model must belong to a Linear layer (the MLP);
    /// convolutions join when the models issue brings them.
    /// </summary>
    public static KroneckerFactoredCurvature Compute(Module model, string loss, NdArray inputs, RandomGenerator rng, double damping = 0, bool training = false)
    {
        var ps = model.Parameters();
        var k = new KroneckerFactoredCurvature(ps, damping);
        var values = ps.Select(p => (Tensor)p.Value).ToArray();

        // Pass 1: record each Linear's input and output shape, and the outputs for sampling labels.
        var taps = new List<(Linear Layer, NdArray Input, Shape Output)>();
        var outputs = model.Forward(new Bindings(ps, values, training)
        {
            Tap = (m, x, y) => { taps.Add(((Linear)m, x.Data, y.Shape)); return y; },
        }, inputs).Data;
        int n = outputs.Shape[0];
        var owned = new HashSet<Parameter>(ReferenceEqualityComparer.Instance);
        foreach (var (layer, _, _) in taps) { owned.Add(layer.Weight); if (layer.Bias is not null) owned.Add(layer.Bias); }
        if (ps.Any(p => !owned.Contains(p))) throw new NotSupportedException("kfac: the model has parameters outside Linear layers; K-FAC here covers Linear layers only.");

        // Sampled targets: the loss is Σₙ −log p(ŷₙ | xₙ), so its gradient rows are the per-example gradients.
        k.SampledTargets = loss switch
        {
            "ce" => SampleCategorical(outputs, rng),
            "mse" => outputs + rng.Normal(outputs.Shape, dtype: outputs.DType),
            _ => throw new ArgumentException($"kfac: loss '{loss}' is not one of mse, ce."),
        };
        Tensor SummedLoss(Tensor o) => (loss == "ce" ? Losses.CrossEntropy(o, k.SampledTargets) : Losses.MeanSquaredErrorTo(o, k.SampledTargets)) * n;
        var zeros = taps.Select(t => (Tensor)NdArray.Zeros(t.Output, outputs.DType, outputs.Device)).ToArray();
        var grads = Derivatives.Grad(eps =>
        {
            int i = 0;
            var o = model.Forward(new Bindings(ps, values, training) { Tap = (m, x, y) => y + eps[i++] }, inputs);
            return SummedLoss(o);
        }, zeros);

        for (int l = 0; l < taps.Count; l++)
        {
            var (layer, a, _) = taps[l];
            var aTilde = layer.Bias is null ? a : NdArray.Concat([a, NdArray.Ones(new Shape(a.Shape[0], 1), a.DType, a.Device)], 1);
            var g = grads[l].Data;
            int rows = a.Shape[0];
            k.layers.Add((IndexOf(ps, layer.Weight), layer.Bias is null ? -1 : IndexOf(ps, layer.Bias),
                aTilde.MatMul(aTilde, transA: true) * (1.0 / rows), g.MatMul(g, transA: true) * (1.0 / rows)));
        }
        return k;
    }

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
            var block = b < 0 ? parts[w] : NdArray.Concat([parts[w], parts[b].Reshape(-1, 1)], 1);
            var gv = g.MatMul(block) + (root > 0 ? block * root : block.ZerosLike());
            var gva = gv.MatMul(a) + (root > 0 ? gv * root : gv.ZerosLike());
            int inFeatures = parameters[w].Shape[1];
            result[w] = b < 0 ? gva : gva.Slice(1, 0, inFeatures);
            if (b >= 0) result[b] = gva.Slice(1, inFeatures, 1).Reshape(-1);
        }
        return Vectors.Flatten(result);
    }

    /// <summary>max over layers of λmax(A)·λmax(G) (undamped), each factor's top eigenvalue by Lanczos.</summary>
    public double TopEigenvalue()
    {
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
