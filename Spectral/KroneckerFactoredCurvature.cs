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
/// sequence model's positions count as examples. BatchNorm2d and LayerNorm get a 2×2 block per channel over
/// (γ_c, β_c): the exact Fisher of that pair, E[(u, v)(u, v)ᵀ] with u = Σ g·x̂ and v = Σ g over the channel's
/// positions of an example (a sequence position counting as an example, as above), no Kronecker approximation
/// needed. An Embedding [V, D] gets diag(f) ⊗ G, f the token frequencies (its inputs are one-hot, so A is diagonal)
/// and G = E[g gᵀ] over positions: exact for each row's gradient direction, approximate only in assuming the token
/// independent of its output gradient. A parameter two layers use (the GPT's wte, tied to lm_head) gets the sum of
/// their blocks. Parameters no such layer owns get a zero block and are listed in <see cref="Uncovered"/>. Labels are sampled from the model's
/// predictive distribution (the true Fisher, not the empirical one): categorical for cross-entropy, Gaussian
/// N(output, I) for the MSE of MODELS.md. As an operator on the flattened parameters, a layer's block [W | b]
/// maps to (G + √λ I)·[W | b]·(A + √λ I) (damping λ), an embedding's likewise to diag(f + √λ)·W·(G + √λ I), a
/// normalization channel's to (F_c + λI)·(γ_c, β_c); the top eigenvalue of the undamped approximation is the
/// largest over blocks: λmax(A)·λmax(G), max f·λmax(G), λmax(F_c).
/// <para>
/// Eigenvalue-corrected (EKFAC; George et al. 2018, "Fast Approximate Natural Gradient Descent in a Kronecker-factored
/// Eigenbasis"): each Kronecker block keeps the eigenbases U_A, U_G of its factors but replaces the Kronecker
/// eigenvalues λ(A)·λ(G) by the second moments of the per-example gradients in that basis,
/// S = E_n[(U_Gᵀ ∇W̃_n U_A)²] ([out, in + 1]): the diagonal of the Fisher in the Kronecker-factored eigenbasis, the
/// best diagonal fit there in Frobenius norm, so never farther from the Fisher than K-FAC. An
/// embedding keeps the one-hot token basis and its U_G: S[v, :] = E[(gU_G)² · 1{id = v}]. Per-example means a batch
/// row of a Linear layer (a sequence position), an image of a convolution. As an operator a block maps
/// V ↦ U_G((U_GᵀVU_A) ∘ (S + λ))U_Aᵀ, that is F̂ + λI exactly; the top eigenvalue is the largest S.
/// </para>
/// </summary>
public sealed class KroneckerFactoredCurvature : ILinearOperator
{
    private readonly IReadOnlyList<Parameter> parameters;
    private readonly List<(int Weight, int Bias, NdArray A, NdArray G)> layers = [];
    // Per-channel second moments E[u²], E[uv], E[v²] of a normalization layer's (γ, β) per-example gradients, [C] each.
    private readonly List<(int Scale, int Shift, NdArray Uu, NdArray Uv, NdArray Vv)> normalizations = [];
    // An embedding's token frequencies [V] and output-gradient moment G [D, D].
    private readonly List<(int Weight, NdArray Frequencies, NdArray G)> embeddings = [];
    // EKFAC: each Kronecker layer's factor eigenbases U_A [in+1, in+1], U_G [out, out] and scales S [out, in+1]
    // (parallel to layers), each embedding's U_G [D, D] and scales S [V, D] (parallel to embeddings).
    private readonly List<(NdArray UA, NdArray UG, NdArray S)> eigenbases = [];
    private readonly List<(NdArray UG, NdArray S)> embeddingEigenbases = [];
    private readonly List<int> uncovered = [];
    // Each covered parameter's first layer in forward order (which block owns a shared parameter's inverse).
    private readonly Dictionary<int, int> firstUse = [];

    /// <summary>Indices (in the parameter list) of parameters no Linear, Conv2d, BatchNorm2d, LayerNorm or Embedding layer owns: their blocks are zero.</summary>
    public IReadOnlyList<int> Uncovered => uncovered;

    private KroneckerFactoredCurvature(IReadOnlyList<Parameter> parameters, double damping, bool eigenvalueCorrected)
    {
        this.parameters = parameters;
        Damping = damping;
        EigenvalueCorrected = eigenvalueCorrected;
        Dimension = parameters.Sum(p => p.Shape.Size);
        DType = parameters[0].Data.DType;
        Device = parameters[0].Data.Device;
    }

    /// <summary>λ.</summary>
    public double Damping { get; }

    /// <summary>Whether the Kronecker and embedding blocks are eigenvalue-corrected (EKFAC).</summary>
    public bool EigenvalueCorrected { get; }

    /// <summary>EKFAC only: each Linear and Conv2d layer's factor eigenbases (columns) and its scales S = E[(U_Gᵀ∇W̃U_A)²], in forward order.</summary>
    public IReadOnlyList<(NdArray UA, NdArray UG, NdArray S)> Eigenbases => eigenbases;

    /// <summary>EKFAC only: each Embedding layer's output-gradient eigenbasis U_G and its scales S [V, D], in forward order.</summary>
    public IReadOnlyList<(NdArray UG, NdArray S)> EmbeddingEigenbases => embeddingEigenbases;

    /// <inheritdoc/>
    public long Dimension { get; }

    /// <inheritdoc/>
    public DType DType { get; }

    /// <inheritdoc/>
    public Device Device { get; }

    /// <summary>The targets sampled from the model's predictive distribution (int64 labels for ce, floats for mse).</summary>
    public NdArray? SampledTargets { get; private set; }

    /// <summary>The factors (A, G) of each Linear and Conv2d layer, in forward order.</summary>
    public IReadOnlyList<(NdArray A, NdArray G)> Factors => layers.Select(l => (l.A, l.G)).ToArray();

    /// <summary>Each BatchNorm2d and LayerNorm layer's per-channel 2×2 Fisher blocks, as the three moments E[u²], E[uv], E[v²] ([C] each), in forward order.</summary>
    public IReadOnlyList<(NdArray Uu, NdArray Uv, NdArray Vv)> NormalizationBlocks => normalizations.Select(n => (n.Uu, n.Uv, n.Vv)).ToArray();

    /// <summary>Each Embedding layer's token frequencies f [V] and output-gradient moment G [D, D], in forward order.</summary>
    public IReadOnlyList<(NdArray Frequencies, NdArray G)> EmbeddingFactors => embeddings.Select(e => (e.Frequencies, e.G)).ToArray();

    /// <summary>
    /// Computes the factors on a batch: one pass records each Linear and Conv2d layer's input and output shape, a
    /// second differentiates the loss of labels sampled from the model with respect to zero perturbations of the
    /// layers' outputs, which gives the per-example (per-position) output gradients. With
    /// <paramref name="eigenvalueCorrected"/> the blocks are EKFAC's: the factors' eigenbases and the per-example
    /// gradients' second moments in them. Given <paramref name="basis"/> (an earlier EKFAC inverse of the same model)
    /// it keeps that inverse's eigenbases and re-estimates only the scales in them: George et al.'s amortization,
    /// the eigendecompositions (most of a refresh's cost) done less often than the cheap scales.
    /// </summary>
    public static KroneckerFactoredCurvature Compute(Module model, string loss, NdArray inputs, RandomGenerator rng, double damping = 0, bool training = false,
        bool eigenvalueCorrected = false, KfacPreconditioner? basis = null)
    {
        if (basis is not null && !eigenvalueCorrected) throw new ArgumentException("kfac: a held eigenbasis is EKFAC's; pass eigenvalueCorrected: true with it.");
        var ps = model.Parameters();
        var k = new KroneckerFactoredCurvature(ps, damping, eigenvalueCorrected);
        // The eigenbasis of a layer's factors: decomposed, or the held inverse's block for the same weight.
        (NdArray UA, NdArray UG) Eigenbasis(int weight, NdArray a, NdArray gg)
        {
            if (basis is null) return (SymmetricEigen.Decompose(a).Vectors, SymmetricEigen.Decompose(gg).Vectors);
            var held = basis.Blocks.FirstOrDefault(b => b.Kind == KfacPreconditioner.Eigenbasis && b.First == weight)
                ?? throw new ArgumentException($"kfac: the held eigenbasis has no Kronecker block for parameter {weight}.");
            return (held.A, held.B);
        }
        NdArray EmbeddingBasis(int weight, NdArray gg)
        {
            if (basis is null) return SymmetricEigen.Decompose(gg).Vectors;
            return (basis.Blocks.FirstOrDefault(b => b.Kind == KfacPreconditioner.EmbeddingEigenbasis && b.First == weight)
                ?? throw new ArgumentException($"kfac: the held eigenbasis has no embedding block for parameter {weight}.")).A;
        }
        var values = ps.Select(p => (Tensor)p.Data).ToArray();

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
            foreach (var p in Owned(layer)) k.firstUse.TryAdd(IndexOf(ps, p), l);
            var g = grads[l].Data;
            switch (layer)
            {
                case Linear linear:
                {
                    var aTilde = linear.Bias is null ? input : NdArray.Concat([input, NdArray.Ones(new Shape(input.Shape[0], 1), input.DType, input.Device)], 1);
                    int count = input.Shape[0];
                    var (a, gg) = (aTilde.MatMul(aTilde, transA: true) * (1.0 / count), g.MatMul(g, transA: true) * (1.0 / count));
                    int w = IndexOf(ps, linear.Weight);
                    k.layers.Add((w, linear.Bias is null ? -1 : IndexOf(ps, linear.Bias), a, gg));
                    if (eigenvalueCorrected)
                    {
                        // Row n's gradient g_n ã_nᵀ is (U_Gᵀg_n)(U_Aᵀã_n)ᵀ in the eigenbasis, so its square is an outer product of squares.
                        var (ua, ug) = Eigenbasis(w, a, gg);
                        var (gu, au) = (g.MatMul(ug), aTilde.MatMul(ua));
                        k.eigenbases.Add((ua, ug, (gu * gu).MatMul(au * au, transA: true) * (1.0 / count)));
                    }
                    break;
                }
                case BatchNorm2d or LayerNorm:
                {
                    // u = Σ g·x̂ and v = Σ g per example and channel: over H, W for BatchNorm, per row for LayerNorm.
                    var (scale, shift) = layer is BatchNorm2d bn ? (bn.Weight, bn.Bias) : (((LayerNorm)layer).Weight, ((LayerNorm)layer).Bias);
                    int c = scale.Shape[0];
                    var (u, v) = layer is BatchNorm2d ? ((g * input).Sum([2, 3]), g.Sum([2, 3])) : ((g * input).Reshape(-1, c), g.Reshape(-1, c));
                    double inv = 1.0 / u.Shape[0];
                    k.normalizations.Add((IndexOf(ps, scale), IndexOf(ps, shift), (u * u).Sum([0]) * inv, (u * v).Sum([0]) * inv, (v * v).Sum([0]) * inv));
                    break;
                }
                case Embedding embedding:
                {
                    var ids = input.ToArray<long>();
                    int vocabulary = embedding.Weight.Shape[0], d = embedding.Weight.Shape[1];
                    var counts = new double[vocabulary];
                    foreach (long id in ids) counts[id] += 1.0 / ids.Length;
                    var rowsG = g.Reshape(-1, d);
                    var gg = rowsG.MatMul(rowsG, transA: true) * (1.0 / ids.Length);
                    k.embeddings.Add((IndexOf(ps, embedding.Weight), NdArray.FromArray(counts, new Shape(vocabulary)).Cast(g.DType).To(g.Device), gg));
                    if (eigenvalueCorrected)
                    {
                        // A position's gradient is e_id·gᵀ: in the basis (one-hot, U_G) it lands on row id as (gU_G)².
                        var ug = EmbeddingBasis(IndexOf(ps, embedding.Weight), gg);
                        var gu = rowsG.MatMul(ug);
                        var oneHot = new double[ids.Length * vocabulary];
                        for (int i = 0; i < ids.Length; i++) oneHot[i * vocabulary + ids[i]] = 1;
                        var tokens = NdArray.FromArray(oneHot, new Shape(ids.Length, vocabulary)).Cast(g.DType).To(g.Device);
                        k.embeddingEigenbases.Add((ug, tokens.MatMul(gu * gu, transA: true) * (1.0 / ids.Length)));
                    }
                    break;
                }
                case Conv2d conv:
                {
                    int examples = input.Shape[0], o = conv.Weight.Shape[0], kh = conv.Weight.Shape[2], kw = conv.Weight.Shape[3];
                    var cols = input.Im2Col(kh, kw, conv.Stride, conv.Padding);                      // [K, N·T]
                    int positions = cols.Shape[1] / examples;
                    var aTilde = conv.Bias is null ? cols : NdArray.Concat([cols, NdArray.Ones(new Shape(1, cols.Shape[1]), cols.DType, cols.Device)], 0);
                    var gRows = g.Permute(1, 0, 2, 3).Reshape(o, -1);                               // [O, N·T]
                    var (a, gg) = (aTilde.MatMul(aTilde, transB: true) * (1.0 / examples), gRows.MatMul(gRows, transB: true) * (1.0 / ((double)examples * positions)));
                    int w = IndexOf(ps, conv.Weight);
                    k.layers.Add((w, conv.Bias is null ? -1 : IndexOf(ps, conv.Bias), a, gg));
                    if (eigenvalueCorrected)
                    {
                        // Example n's gradient Σ_t g_t ã_tᵀ in the eigenbasis: (U_Gᵀg_n)(U_Aᵀã_n)ᵀ over its T columns, one batched product.
                        var (ua, ug) = Eigenbasis(w, a, gg);
                        var gu = ug.MatMul(gRows, transA: true).Reshape(o, examples, positions).Permute(1, 0, 2);             // [N, O, T]
                        var au = ua.MatMul(aTilde, transA: true).Reshape(aTilde.Shape[0], examples, positions).Permute(1, 0, 2); // [N, K̃, T]
                        var perExample = gu.MatMul(au, transB: true);                                                      // [N, O, K̃]
                        k.eigenbases.Add((ua, ug, (perExample * perExample).Sum([0]) * (1.0 / examples)));
                    }
                    break;
                }
            }
        }
        return k;
    }

    /// <summary>
    /// The factor arrays in a fixed order (each Kronecker layer's A, G; each normalization's E[u²], E[uv], E[v²]; each
    /// embedding's f, G): what a running average keeps and a checkpoint stores. EKFAC's bases and scales are not among them.
    /// </summary>
    public IReadOnlyList<NdArray> FactorArrays() =>
    [
        .. layers.SelectMany(l => new[] { l.A, l.G }),
        .. normalizations.SelectMany(n => new[] { n.Uu, n.Uv, n.Vv }),
        .. embeddings.SelectMany(e => new[] { e.Frequencies, e.G }),
    ];

    /// <summary>
    /// The exponential moving average of K-FAC's factors (Martens and Grosse 2015): each array
    /// ξ·<paramref name="previous"/> + (1 − ξ)·this, with <paramref name="previous"/> in <see cref="FactorArrays"/>'s order
    /// (from an earlier curvature of the same model, or a checkpoint). K-FAC blocks only: EKFAC's scales live in a basis.
    /// </summary>
    public KroneckerFactoredCurvature Averaged(IReadOnlyList<NdArray> previous, double decay)
    {
        if (EigenvalueCorrected) throw new NotSupportedException("kfac: a running average of the factors is K-FAC's; EKFAC re-estimates its scales in a held basis instead.");
        if (!(decay >= 0 && decay < 1)) throw new ArgumentOutOfRangeException(nameof(decay), decay, "kfac: the average's decay must lie in [0, 1).");
        var current = FactorArrays();
        if (previous.Count != current.Count || previous.Zip(current).Any(p => p.First.Shape != p.Second.Shape))
            throw new ArgumentException($"kfac: the averaged factors ({previous.Count} arrays) do not match this model's ({current.Count}: {string.Join(", ", current.Select(c => c.Shape))}).");
        var mixed = previous.Zip(current, (p, c) => p * decay + c * (1 - decay)).ToArray();
        var k = new KroneckerFactoredCurvature(parameters, Damping, false) { SampledTargets = SampledTargets };
        int i = 0;
        foreach (var (w, b, _, _) in layers) k.layers.Add((w, b, mixed[i++], mixed[i++]));
        foreach (var (s, t, _, _, _) in normalizations) k.normalizations.Add((s, t, mixed[i++], mixed[i++], mixed[i++]));
        foreach (var (w, _, _) in embeddings) k.embeddings.Add((w, mixed[i++], mixed[i++]));
        k.uncovered.AddRange(uncovered);
        foreach (var kv in firstUse) k.firstUse[kv.Key] = kv.Value;
        return k;
    }

    private static IEnumerable<Parameter> Owned(Module layer) => layer switch
    {
        Linear l => l.Bias is null ? [l.Weight] : [l.Weight, l.Bias],
        Conv2d c => c.Bias is null ? [c.Weight] : [c.Weight, c.Bias],
        BatchNorm2d bn => [bn.Weight, bn.Bias],
        LayerNorm ln => [ln.Weight, ln.Bias],
        Embedding e => [e.Weight],
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
        for (int l = 0; l < layers.Count; l++)
        {
            var (w, b, a, g) = layers[l];
            // A weight as [out, in] (a convolution's [O, C, kh, kw] as [O, C·kh·kw]), the bias as one more column.
            var shape = parameters[w].Shape;
            var weight = parts[w].Reshape(shape[0], -1);
            int inFeatures = weight.Shape[1];
            var block = b < 0 ? weight : NdArray.Concat([weight, parts[b].Reshape(-1, 1)], 1);
            NdArray gva;
            if (EigenvalueCorrected)
            {
                var (ua, ug, s) = eigenbases[l];
                gva = KfacPreconditioner.InEigenbasis(block, ua, ug, Damping > 0 ? s + Damping : s);
            }
            else
            {
                var gv = g.MatMul(block) + (root > 0 ? block * root : block.ZerosLike());
                gva = gv.MatMul(a) + (root > 0 ? gv * root : gv.ZerosLike());
            }
            // Accumulated: a parameter two layers use gets the sum of their blocks.
            result[w] = result[w] + (b < 0 ? gva : gva.Slice(1, 0, inFeatures)).Reshape(shape);
            if (b >= 0) result[b] = result[b] + gva.Slice(1, inFeatures, 1).Reshape(-1);
        }
        foreach (var (scale, shift, uu, uv, vv) in normalizations)
        {
            // (F_c + λI)·(γ_c, β_c) for every channel at once.
            var (x, y) = (parts[scale], parts[shift]);
            result[scale] = result[scale] + uu * x + uv * y + (Damping > 0 ? x * Damping : x.ZerosLike());
            result[shift] = result[shift] + uv * x + vv * y + (Damping > 0 ? y * Damping : y.ZerosLike());
        }
        for (int e = 0; e < embeddings.Count; e++)
        {
            var (w, f, g) = embeddings[e];
            var table = parts[w];
            if (EigenvalueCorrected)
            {
                var (ug, s) = embeddingEigenbases[e];
                result[w] = result[w] + KfacPreconditioner.InEigenbasis(table, null, ug, Damping > 0 ? s + Damping : s);
                continue;
            }
            var wg = table.MatMul(g) + (root > 0 ? table * root : table.ZerosLike());
            result[w] = result[w] + wg * (root > 0 ? f + root : f).Reshape(-1, 1);
        }
        return Vectors.Flatten(result);
    }

    /// <summary>
    /// The inverse of this approximation damped by <paramref name="damping"/> λ &gt; 0 (as <see cref="Apply"/> damps it),
    /// block by block: the natural-gradient preconditioner of a K-FAC optimizer (<see cref="KfacPreconditioner"/>).
    /// </summary>
    public KfacPreconditioner Inverse(double damping)
    {
        if (!(damping > 0 && double.IsFinite(damping))) throw new ArgumentOutOfRangeException(nameof(damping), damping, "kfac: the inverse needs a positive damping.");
        double root = Math.Sqrt(damping);
        var blocks = new List<KfacPreconditioner.Block>();
        for (int l = 0; l < layers.Count; l++)
        {
            var (w, b, a, g) = layers[l];
            if (EigenvalueCorrected)
            {
                var (ua, ug, s) = eigenbases[l];
                blocks.Add(new(KfacPreconditioner.Eigenbasis, w, b, ua, ug, (s + damping).Apply(Kernels.UnaryOp.Reciprocal)));
            }
            else blocks.Add(new(KfacPreconditioner.Kronecker, w, b, KfacPreconditioner.DampedInverse(a, root), KfacPreconditioner.DampedInverse(g, root)));
        }
        foreach (var (scale, shift, uu, uv, vv) in normalizations)
        {
            // [[a, b], [b, d]]⁻¹ = [[d, −b], [−b, a]]/(ad − b²) with a = E[u²] + λ, d = E[v²] + λ.
            var (p, q) = (uu + damping, vv + damping);
            var det = p * q - uv * uv;
            blocks.Add(new(KfacPreconditioner.Normalization, scale, shift, q / det, -uv / det, p / det));
        }
        for (int e = 0; e < embeddings.Count; e++)
        {
            var (w, f, g) = embeddings[e];
            blocks.Add(EigenvalueCorrected
                ? new(KfacPreconditioner.EmbeddingEigenbasis, w, -1, embeddingEigenbases[e].UG, (embeddingEigenbases[e].S + damping).Apply(Kernels.UnaryOp.Reciprocal))
                : new(KfacPreconditioner.Embedding, w, -1, (f + root).Apply(Kernels.UnaryOp.Reciprocal), KfacPreconditioner.DampedInverse(g, root)));
        }
        // Forward order of first use: a shared parameter's first owner acts (Apply skips the later ones).
        return new KfacPreconditioner(blocks.OrderBy(x => Order(x.First)).ToArray());

        int Order(int parameter) => firstUse.TryGetValue(parameter, out int o) ? o : int.MaxValue;
    }

    /// <summary>
    /// The largest eigenvalue over the blocks (undamped): λmax(A)·λmax(G) of each Kronecker block (each factor's
    /// top eigenvalue by Lanczos), max f·λmax(G) of each embedding, λmax of each channel's 2×2 block (closed form).
    /// EKFAC: the largest scale S of each Kronecker and embedding block. A parameter shared by two layers makes this a
    /// lower bound (the sum of its blocks is not factored).
    /// </summary>
    public double TopEigenvalue()
    {
        if (layers.Count + normalizations.Count + embeddings.Count == 0)
            throw new NotSupportedException("kfac: the model has no Linear, Conv2d, BatchNorm2d, LayerNorm or Embedding layer to factor.");
        double best = double.NegativeInfinity;
        foreach (var (_, _, uu, uv, vv) in normalizations)
        {
            var (a, b, d) = (uu.ToDoubleArray(), uv.ToDoubleArray(), vv.ToDoubleArray());
            for (int c = 0; c < a.Length; c++) best = Math.Max(best, (a[c] + d[c]) / 2 + Math.Sqrt((a[c] - d[c]) * (a[c] - d[c]) / 4 + b[c] * b[c]));
        }
        if (EigenvalueCorrected)
        {
            foreach (var (_, _, s) in eigenbases) best = Math.Max(best, s.ToDoubleArray().Max());
            foreach (var (_, s) in embeddingEigenbases) best = Math.Max(best, s.ToDoubleArray().Max());
            return best;
        }
        foreach (var (_, f, g) in embeddings)
            best = Math.Max(best, f.ToDoubleArray().Max() * Lanczos.Run(new DenseOperator(g), Math.Min(30, g.Shape[0]), rng: new RandomGenerator(2)).Values[0]);
        foreach (var (_, _, a, g) in layers)
        {
            double la = Lanczos.Run(new DenseOperator(a), Math.Min(30, a.Shape[0]), rng: new RandomGenerator(1)).Values[0];
            double lg = Lanczos.Run(new DenseOperator(g), Math.Min(30, g.Shape[0]), rng: new RandomGenerator(2)).Values[0];
            best = Math.Max(best, la * lg);
        }
        return best;
    }
}
