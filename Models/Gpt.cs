using System.Globalization;
using Curvature.Autodiff;
using Curvature.Engine;
using Curvature.Models.Layers;

namespace Curvature.Models;

/// <summary>
/// The hyper-parameters of <see cref="Gpt"/>. The defaults are MODELS.md's: vocabulary 65, context 256,
/// 6 layers, 6 heads, width 384, no dropout.
/// </summary>
public sealed record GptConfig(int Vocabulary = 65, int Context = 256, int Layers = 6, int Heads = 6, int Width = 384, double Dropout = 0)
{
    /// <summary>Throws with every bad field named.</summary>
    public void Validate()
    {
        var problems = new List<string>();
        if (Vocabulary < 1) problems.Add($"vocabulary {Vocabulary} (expected ≥ 1)");
        if (Context < 1) problems.Add($"context {Context} (expected ≥ 1)");
        if (Layers < 1) problems.Add($"layers {Layers} (expected ≥ 1)");
        if (Heads < 1 || Width < 1 || Width % Heads != 0) problems.Add($"width {Width} with {Heads} heads (expected heads ≥ 1 dividing the width)");
        if (!(Dropout >= 0 && Dropout < 1)) problems.Add($"dropout {Dropout} (expected [0, 1))");
        if (problems.Count > 0) throw new ArgumentException("gpt: " + string.Join("; ", problems) + ".");
    }

    /// <summary>
    /// The configuration a nanoGPT state dict implies: vocabulary and width from <c>transformer.wte.weight</c>,
    /// context from <c>transformer.wpe.weight</c>, layers from the highest <c>transformer.h.{i}</c>; heads are not
    /// in the shapes and come from the caller (a file's <c>n_head</c> metadata or an option).
    /// </summary>
    public static GptConfig FromStateDict(IReadOnlyDictionary<string, NdArray> state, int heads, string source)
    {
        if (!state.TryGetValue("transformer.wte.weight", out var wte) || wte.Rank != 2)
            throw new StateDictException($"{source} is not a GPT: it has no [V, d] tensor 'transformer.wte.weight'.");
        if (!state.TryGetValue("transformer.wpe.weight", out var wpe) || wpe.Rank != 2)
            throw new StateDictException($"{source} is not a GPT: it has no [T, d] tensor 'transformer.wpe.weight'.");
        // The layer count is the number of distinct block indices, which must be exactly 0 … L − 1: a name alone
        // (transformer.h.99999999.…) never sizes the model (a file is untrusted).
        var indices = new SortedSet<long>();
        foreach (var name in state.Keys)
        {
            if (!name.StartsWith("transformer.h.", StringComparison.Ordinal)) continue;
            var rest = name["transformer.h.".Length..];
            int dot = rest.IndexOf('.');
            if (dot > 0 && long.TryParse(rest[..dot], NumberStyles.None, CultureInfo.InvariantCulture, out long i)) indices.Add(i);
            else throw new StateDictException($"{source}: tensor '{name}' has no block index (expected transformer.h.<i>.<name>).");
        }
        if (indices.Count == 0) throw new StateDictException($"{source} is not a GPT: it has no 'transformer.h.0.*' tensors.");
        int layers = indices.Count;
        if (indices.Max != layers - 1)
            throw new StateDictException($"{source}: the blocks are numbered {string.Join(", ", indices.Take(8))}{(indices.Count > 8 ? ", …" : "")}; " +
                                         $"expected transformer.h.0 to transformer.h.{layers - 1} for its {layers} blocks, each present.");
        return new GptConfig(wte.Shape[0], wpe.Shape[0], layers, heads, wte.Shape[1]);
    }
}

/// <summary>
/// GPT of MODELS.md with nanoGPT's names (Karpathy, <c>model.py</c>): token and position embeddings, pre-norm
/// blocks <c>x = x + attn(ln_1(x))</c>, <c>x = x + mlp(ln_2(x))</c> with an exact-GELU MLP of width 4d, a final
/// LayerNorm and <c>lm_head</c> tied to <c>transformer.wte.weight</c> (one parameter under two names; the state
/// dict stores it once). Input int64 token ids [B, T] with T ≤ context; output logits [B, T, V].
/// </summary>
public sealed class Gpt : Module
{
    private readonly Trunk transformer;
    private readonly Linear lmHead;

    /// <summary>Builds the network with nanoGPT's initialization (N(0, 0.02); residual projections N(0, 0.02/√(2L)); zero biases).</summary>
    public Gpt(GptConfig config, RandomGenerator rng, DType dtype = DType.Float32)
    {
        config.Validate();
        Config = config;
        transformer = AddModule("transformer", new Trunk(config, rng, dtype));
        lmHead = AddModule("lm_head", new Linear(transformer.Wte.Weight));
        double residualStd = 0.02 / Math.Sqrt(2 * config.Layers);
        foreach (var (name, p) in NamedParameters())
        {
            if (name.EndsWith(".bias", StringComparison.Ordinal) && !name.Contains(".ln_", StringComparison.Ordinal) && !name.StartsWith("transformer.ln_f", StringComparison.Ordinal))
                p.Data = NdArray.Zeros(p.Shape, dtype);
            else if (name.EndsWith("c_proj.weight", StringComparison.Ordinal)) p.Data = rng.Normal(p.Shape, 0, residualStd, dtype);
            else if (p.Shape.Rank == 2) p.Data = rng.Normal(p.Shape, 0, 0.02, dtype);
        }
    }

    /// <summary>The hyper-parameters.</summary>
    public GptConfig Config { get; }

    /// <summary>
    /// Drops the causal-mask buffers some nanoGPT and Hugging Face versions keep in their state dicts
    /// (<c>transformer.h.{i}.attn.bias</c>, <c>.attn.masked_bias</c>): they are constants, not weights, and this model
    /// builds its own mask. Everything else is left for the strict loader to check.
    /// </summary>
    public static Dictionary<string, NdArray> WithoutMaskBuffers(IReadOnlyDictionary<string, NdArray> state) =>
        state.Where(kv => !(kv.Key.StartsWith("transformer.h.", StringComparison.Ordinal)
                            && (kv.Key.EndsWith(".attn.bias", StringComparison.Ordinal) || kv.Key.EndsWith(".attn.masked_bias", StringComparison.Ordinal))))
             .ToDictionary(kv => kv.Key, kv => kv.Value);

    /// <inheritdoc/>
    public override Tensor Forward(Bindings b, Tensor ids)
    {
        if (ids.Rank != 2 || ids.DType != DType.Int64)
            throw new ArgumentException($"gpt: input {ids.DType.Name()} {ids.Shape}; expected int64 token ids [B, T].");
        if (ids.Shape[1] > Config.Context)
            throw new ArgumentException($"gpt: a sequence of {ids.Shape[1]} tokens is longer than the context of {Config.Context}.");
        return lmHead.Forward(b, transformer.Forward(b, ids));
    }

    /// <summary><c>transformer</c>: wte, wpe, drop, h (the blocks), ln_f.</summary>
    private sealed class Trunk : Module
    {
        private readonly Embedding wpe;
        private readonly Dropout drop;
        private readonly Sequential h;
        private readonly LayerNorm lnF;
        private readonly Dictionary<(int T, Device Device), Tensor> positions = [];

        public Trunk(GptConfig c, RandomGenerator rng, DType dtype)
        {
            Wte = AddModule("wte", new Embedding(c.Vocabulary, c.Width, rng, dtype));
            wpe = AddModule("wpe", new Embedding(c.Context, c.Width, rng, dtype));
            drop = new Dropout(c.Dropout);
            h = AddModule("h", new Sequential(Enumerable.Range(0, c.Layers).Select(_ => (Module)new Block(c, rng, dtype)).ToArray()));
            lnF = AddModule("ln_f", new LayerNorm(c.Width, dtype: dtype));
        }

        public Embedding Wte { get; }

        public override Tensor Forward(Bindings b, Tensor ids)
        {
            int t = ids.Shape[1];
            Tensor pos;
            lock (positions)
                if (!positions.TryGetValue((t, ids.Device), out pos!))
                    positions[(t, ids.Device)] = pos = Tensor.Constant(NdArray.FromArray(Enumerable.Range(0, t).Select(i => (long)i).ToArray(), new Shape(t), ids.Device));
            // Under a hook (K-FAC) every example looks its positions up, so the position embedding's output gradients are per example.
            if (b.Tap is not null)
                pos = Tensor.Constant(NdArray.FromArray(Enumerable.Range(0, ids.Shape[0] * t).Select(i => (long)(i % t)).ToArray(), new Shape(ids.Shape[0], t), ids.Device));
            var x = drop.Forward(b, Wte.Forward(b, ids) + wpe.Forward(b, pos));
            return lnF.Forward(b, h.Forward(b, x));
        }
    }

    /// <summary>A pre-norm transformer block: ln_1, attn, ln_2, mlp.</summary>
    private sealed class Block : Module
    {
        private readonly LayerNorm ln1, ln2;
        private readonly CausalSelfAttention attn;
        private readonly FeedForward mlp;

        public Block(GptConfig c, RandomGenerator rng, DType dtype)
        {
            ln1 = AddModule("ln_1", new LayerNorm(c.Width, dtype: dtype));
            attn = AddModule("attn", new CausalSelfAttention(c.Width, c.Heads, rng, c.Dropout, dtype: dtype));
            ln2 = AddModule("ln_2", new LayerNorm(c.Width, dtype: dtype));
            mlp = AddModule("mlp", new FeedForward(c, rng, dtype));
        }

        public override Tensor Forward(Bindings b, Tensor x)
        {
            x = x + attn.Forward(b, ln1.Forward(b, x));
            return x + mlp.Forward(b, ln2.Forward(b, x));
        }
    }

    /// <summary>mlp: c_fc (d → 4d), exact GELU, c_proj (4d → d), dropout.</summary>
    private sealed class FeedForward : Module
    {
        private readonly Linear fc, proj;
        private readonly Dropout dropout;

        public FeedForward(GptConfig c, RandomGenerator rng, DType dtype)
        {
            fc = AddModule("c_fc", new Linear(c.Width, 4 * c.Width, rng, dtype: dtype));
            proj = AddModule("c_proj", new Linear(4 * c.Width, c.Width, rng, dtype: dtype));
            dropout = new Dropout(c.Dropout);
        }

        public override Tensor Forward(Bindings b, Tensor x) => dropout.Forward(b, proj.Forward(b, fc.Forward(b, x).Gelu()));
    }
}
