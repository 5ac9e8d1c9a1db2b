using Curvature.Autodiff;
using Curvature.Engine;

namespace Curvature.Spectral;

/// <summary>
/// The Hessian of a loss at fixed parameters as an operator on the flattened parameters, products by the
/// exact forward-over-reverse HVP. A large batch is split into chunks whose losses are averaged with weights
/// (for a mean loss, the chunk sizes over the total), so a full-batch product over thousands of examples
/// needs the memory of one chunk: H = Σ_c w_c H_c.
/// </summary>
public sealed class HessianOperator : ILinearOperator
{
    private readonly IReadOnlyList<(Func<Tensor[], Tensor> Loss, double Weight)> terms;
    private readonly Tensor[] parameters;
    private readonly Shape[] shapes;

    /// <summary>An operator for Σ_c w_c ∇²L_c at <paramref name="parameters"/>.</summary>
    public HessianOperator(IReadOnlyList<(Func<Tensor[], Tensor> Loss, double Weight)> terms, IReadOnlyList<NdArray> parameters)
    {
        if (terms.Count == 0) throw new ArgumentException("Hessian operator: no loss terms given.");
        if (parameters.Count == 0) throw new ArgumentException("Hessian operator: no parameters given.");
        this.terms = terms;
        this.parameters = parameters.Select(p => (Tensor)p).ToArray();
        shapes = parameters.Select(p => p.Shape).ToArray();
        Dimension = shapes.Sum(s => s.Size);
        DType = parameters[0].DType;
        Device = parameters[0].Device;
    }

    /// <summary>An operator for the Hessian of one loss (no chunking).</summary>
    public HessianOperator(Func<Tensor[], Tensor> loss, IReadOnlyList<NdArray> parameters) : this([(loss, 1.0)], parameters) { }

    /// <inheritdoc/>
    public long Dimension { get; }

    /// <inheritdoc/>
    public DType DType { get; }

    /// <inheritdoc/>
    public Device Device { get; }

    /// <summary>Products computed so far (one per chunk per call counts as one).</summary>
    public int Products { get; private set; }

    /// <summary>The parameter shapes, in order.</summary>
    public IReadOnlyList<Shape> Shapes => shapes;

    /// <inheritdoc/>
    public NdArray Apply(NdArray v)
    {
        var parts = Vectors.Unflatten(v, shapes).Select(p => (Tensor)p).ToArray();
        Products++;
        return WeightedSum(terms.Select(t => Derivatives.Hvp(t.Loss, parameters, parts).Product).ToArray());
    }

    /// <summary>Σ_c w_c·(H_c v), flattened, from each term's product (one tensor per parameter).</summary>
    private NdArray WeightedSum(Tensor[][] products)
    {
        NdArray? total = null;
        for (int c = 0; c < products.Length; c++)
        {
            var hv = Vectors.Flatten(products[c].Select(t => t.Data).ToArray());
            double weight = terms[c].Weight;
            var term = weight == 1 ? hv : hv * weight;
            total = total is null ? term : total + term;
        }
        return total!;
    }

    /// <summary>
    /// The diagonal block of this Hessian over the parameters <paramref name="indices"/> (the others held at their
    /// values as constants): ∇²_bb L. Its products carry tangents from the block's layers on and sweep back only to
    /// them, so a block deep in a network costs less than a whole product.
    /// </summary>
    public HessianOperator Block(IReadOnlyList<int> indices)
    {
        if (indices.Count == 0) throw new ArgumentException("Hessian block: no parameters chosen.");
        foreach (int i in indices)
            if (i < 0 || i >= parameters.Length) throw new ArgumentOutOfRangeException(nameof(indices), i, $"Hessian block: parameter {i} of {parameters.Length}.");
        var all = parameters;
        var blockTerms = terms.Select(t => ((Func<Tensor[], Tensor>)(sub =>
        {
            var full = (Tensor[])all.Clone();
            for (int j = 0; j < indices.Count; j++) full[indices[j]] = sub[j];
            return t.Loss(full);
        }), t.Weight)).ToArray();
        return new HessianOperator(blockTerms, indices.Select(i => parameters[i].Data).ToArray());
    }

    /// <summary>
    /// The same operator with its products by <see cref="RecordedHvp"/>: the first records every loss term's product
    /// as a graph, the rest sweep those graphs transposed (H symmetric), skipping the forward pass and the primal
    /// backward pass. For many products at one point (a block's Lanczos run); the graphs stay in memory while the
    /// returned operator lives, about twice a product's intermediates per term.
    /// </summary>
    public ILinearOperator Recorded() => new RecordedOperator(this);

    private sealed class RecordedOperator(HessianOperator hessian) : ILinearOperator
    {
        private RecordedHvp[]? records;

        public long Dimension => hessian.Dimension;
        public DType DType => hessian.DType;
        public Device Device => hessian.Device;

        public NdArray Apply(NdArray v)
        {
            var parts = Vectors.Unflatten(v, hessian.shapes).Select(p => (Tensor)p).ToArray();
            Tensor[][] products;
            if (records is null)
            {
                records = hessian.terms.Select(t => Derivatives.RecordHvp(t.Loss, hessian.parameters, parts)).ToArray();
                products = records.Select(r => r.First).ToArray();
            }
            else products = records.Select(r => r.Apply(parts)).ToArray();
            hessian.Products++;
            return hessian.WeightedSum(products);
        }
    }

    /// <summary>The loss Σ_c w_c L_c and its flattened gradient.</summary>
    public (double Loss, NdArray Gradient) LossAndGradient()
    {
        double loss = 0;
        NdArray? grad = null;
        foreach (var (f, weight) in terms)
        {
            var (value, g) = Derivatives.ValueAndGrad(f, parameters);
            loss += weight * value.ToScalar();
            var flat = Vectors.Flatten(g.Select(t => t.Data).ToArray()) * weight;
            grad = grad is null ? flat : grad + flat;
        }
        return (loss, grad!);
    }
}
