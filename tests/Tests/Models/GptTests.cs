using Curvature.Autodiff;
using Curvature.Engine;
using Curvature.Models;
using Curvature.Models.Layers;

namespace Curvature.Tests.Models;

/// <summary>GPT's nanoGPT names and counts, the attention's layout and causality, weight tying, dropout, and exact HVPs.</summary>
public class GptTests
{
    private static readonly GptConfig Tiny = new(Vocabulary: 7, Context: 5, Layers: 2, Heads: 2, Width: 4);

    private static Tensor Ids(long[] ids, int batch) => NdArray.FromArray(ids, new Shape(batch, ids.Length / batch));

    [Fact]
    public void Default_gpt_has_the_parameter_count_and_names_of_models_md()
    {
        var gpt = new Gpt(new GptConfig(), new RandomGenerator(0));
        Assert.Equal(10_770_816, gpt.ParameterCount());
        var state = gpt.StateDict().ToDictionary(t => t.Name, t => t.Value);
        Assert.Equal(new Shape(65, 384), state["transformer.wte.weight"].Shape);
        Assert.Equal(new Shape(256, 384), state["transformer.wpe.weight"].Shape);
        Assert.Equal(new Shape(1152, 384), state["transformer.h.5.attn.c_attn.weight"].Shape);
        Assert.Equal(new Shape(1152), state["transformer.h.0.attn.c_attn.bias"].Shape);
        Assert.Equal(new Shape(384, 384), state["transformer.h.0.attn.c_proj.weight"].Shape);
        Assert.Equal(new Shape(1536, 384), state["transformer.h.0.mlp.c_fc.weight"].Shape);
        Assert.Equal(new Shape(384, 1536), state["transformer.h.0.mlp.c_proj.weight"].Shape);
        Assert.Equal(new Shape(384), state["transformer.h.3.ln_2.bias"].Shape);
        Assert.Equal(new Shape(384), state["transformer.ln_f.weight"].Shape);
        Assert.False(state.ContainsKey("lm_head.weight"));
        Assert.False(state.ContainsKey("transformer.h.6.ln_1.weight"));
        Assert.Equal(2 + 6 * 12 + 2, state.Count); // wte, wpe; 12 tensors per block; ln_f
    }

    [Fact]
    public void Lm_head_is_the_token_embedding_and_its_gradient_sums_both_uses()
    {
        var gpt = new Gpt(Tiny with { Layers = 1 }, new RandomGenerator(1), DType.Float64);
        var named = gpt.NamedParameters();
        Assert.DoesNotContain(named, n => n.Name == "lm_head.weight");
        var f = Loss.Function(gpt, "ce", Ids([1, 2, 3, 4, 5, 6], 2).Data, Ids([2, 3, 4, 5, 6, 0], 2).Data);
        var w = gpt.Parameters().Select(p => p.Data).ToArray();
        var v = w.Select((p, i) => i == 0 ? new RandomGenerator(2).Normal(p.Shape, dtype: DType.Float64) : p.ZerosLike()).ToArray();
        var g = GradCheck.Flatten(Derivatives.Grad(f, w.Select(t => (Tensor)t).ToArray())).Data;
        var fd = GradCheck.FiniteDifference(f, w, v);
        Assert.Equal(fd.ToScalar(), g.Dot(GradCheck.Flatten(v.Select(t => (Tensor)t).ToArray()).Data), 1e-7);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void One_attention_layer_matches_a_hand_computation(int heads)
    {
        // q = k = x, v = 2x, c_proj = I, zero biases; x = [[1, 0], [0, 1]] (two positions, width 2).
        var attn = new CausalSelfAttention(2, heads, new RandomGenerator(0), dtype: DType.Float64);
        attn.Projection.Weight.Data = NdArray.FromArray(new double[] { 1, 0, 0, 1, 1, 0, 0, 1, 2, 0, 0, 2 }, new Shape(6, 2));
        attn.Projection.Bias!.Data = NdArray.Zeros(new Shape(6), DType.Float64);
        attn.Output.Weight.Data = NdArray.FromArray(new double[] { 1, 0, 0, 1 }, new Shape(2, 2));
        attn.Output.Bias!.Data = NdArray.Zeros(new Shape(2), DType.Float64);
        var x = NdArray.FromArray(new double[] { 1, 0, 0, 1 }, new Shape(1, 2, 2));
        var y = attn.Forward(Bindings.Constant(attn, false), x).ToArray<double>();
        // Position 0 sees only itself: v₀ = [2, 0].
        double[] expected = new double[4];
        expected[0] = 2; expected[1] = 0;
        if (heads == 1)
        {
            // Position 1: scores [q₁·k₀, q₁·k₁]/√2 = [0, 1/√2].
            double p1 = Math.Exp(1 / Math.Sqrt(2)) / (1 + Math.Exp(1 / Math.Sqrt(2)));
            expected[2] = (1 - p1) * 2; expected[3] = p1 * 2;
        }
        else
        {
            // Head 0 reads feature 0: scores [0, 0], so it averages v[·, 0] = [2, 0]; head 1 reads feature 1: [0, 1].
            double p1 = Math.E / (1 + Math.E);
            expected[2] = 1; expected[3] = p1 * 2;
        }
        for (int i = 0; i < 4; i++) Assert.Equal(expected[i], y[i], 1e-12);
    }

    [Fact]
    public void Logits_at_a_position_do_not_depend_on_later_tokens()
    {
        var gpt = new Gpt(Tiny, new RandomGenerator(3), DType.Float64);
        var b = Bindings.Constant(gpt, false);
        var a = gpt.Forward(b, Ids([1, 2, 3, 4, 5], 1)).Data;
        var c = gpt.Forward(b, Ids([1, 2, 3, 6, 0], 1)).Data;
        Assert.Equal(a.Slice(1, 0, 3).ToArray<double>(), c.Slice(1, 0, 3).ToArray<double>());
        Assert.NotEqual(a.Slice(1, 3, 1).ToArray<double>(), c.Slice(1, 3, 1).ToArray<double>());
    }

    [Fact]
    public void A_sequence_longer_than_the_context_is_refused_with_the_limit()
    {
        var gpt = new Gpt(Tiny, new RandomGenerator(0));
        var e = Assert.Throws<ArgumentException>(() => gpt.Forward(Bindings.Constant(gpt, false), Ids([1, 2, 3, 4, 5, 6], 1)));
        Assert.Contains("6 tokens", e.Message);
        Assert.Contains("context of 5", e.Message);
    }

    [Fact]
    public void Hvp_of_a_tiny_gpt_matches_finite_differences_and_is_symmetric()
    {
        var rng = new RandomGenerator(4);
        var gpt = new Gpt(Tiny, rng, DType.Float64);
        // Larger weights than nanoGPT's 0.02 so the attention is far from uniform and the test has teeth.
        foreach (var p in gpt.Parameters()) p.Data = rng.Normal(p.Shape, 0, 0.5, DType.Float64);
        var f = Loss.Function(gpt, "ce", Ids([1, 2, 3, 4, 5, 0, 6, 6, 2, 1], 2).Data, Ids([2, 3, 4, 5, 6, 6, 6, 2, 1, 0], 2).Data, training: true);
        var w = gpt.Parameters().Select(p => p.Data).ToArray();
        var v = GradCheck.RandomLike(rng, w);
        var u = GradCheck.RandomLike(rng, w);
        Tensor[] T(NdArray[] a) => a.Select(t => (Tensor)t).ToArray();
        var g = GradCheck.Flatten(Derivatives.Grad(f, T(w))).Data;
        GradCheck.AssertClose(NdArray.Scalar(g.Dot(GradCheck.Flatten(T(v)).Data), DType.Float64), GradCheck.FiniteDifference(f, w, v), 1e-7, 1e-9, "tiny GPT gradient");
        var hv = GradCheck.Flatten(Derivatives.Hvp(f, T(w), T(v)).Product).Data;
        var fd = GradCheck.FiniteDifference(p => GradCheck.Flatten(Derivatives.Grad(f, p)), w, v);
        GradCheck.AssertClose(hv, fd, 1e-6, 1e-8, "tiny GPT HVP");
        var hu = GradCheck.Flatten(Derivatives.Hvp(f, T(w), T(u)).Product).Data;
        double uHv = GradCheck.Flatten(T(u)).Data.Dot(hv), vHu = GradCheck.Flatten(T(v)).Data.Dot(hu);
        Assert.Equal(uHv, vHu, 1e-10 * Math.Max(1, Math.Abs(uHv)));
    }

    [Fact]
    public void Attention_derivatives_are_exact_to_second_order()
    {
        var rng = new RandomGenerator(5);
        var attn = new CausalSelfAttention(4, 2, rng, dtype: DType.Float64);
        var ps = attn.Parameters();
        var xs = new[] { rng.Normal(new Shape(2, 3, 4), dtype: DType.Float64) }.Concat(ps.Select(p => rng.Normal(p.Shape, dtype: DType.Float64))).ToArray();
        GradCheck.Check(a => attn.Forward(new Bindings(ps, a[1..], true), a[0]), xs, order: 2, seed: 6, name: "attention");
    }

    [Fact]
    public void State_dict_round_trips_with_or_without_lm_head_and_mask_buffers()
    {
        var source = new Gpt(Tiny, new RandomGenerator(7));
        var state = source.StateDict().ToDictionary(t => t.Name, t => t.Value);
        var withHead = new Dictionary<string, NdArray>(state) { ["lm_head.weight"] = state["transformer.wte.weight"] };
        for (int i = 0; i < Tiny.Layers; i++) withHead[$"transformer.h.{i}.attn.bias"] = NdArray.Ones(new Shape(1, 1, 5, 5));
        foreach (var file in new[] { state, Gpt.WithoutMaskBuffers(withHead) })
        {
            var target = new Gpt(GptConfig.FromStateDict(file, Tiny.Heads, "test"), new RandomGenerator(8));
            Assert.Equal(Tiny, target.Config);
            target.LoadStateDict(file);
            var ids = Ids([1, 2, 3], 1);
            Assert.Equal(source.Forward(Bindings.Constant(source, false), ids).ToArray<float>(), target.Forward(Bindings.Constant(target, false), ids).ToArray<float>());
        }
    }

    [Fact]
    public void Weights_of_another_config_list_every_mismatch_and_change_nothing()
    {
        var other = new Gpt(Tiny with { Width = 6, Layers = 1 }, new RandomGenerator(9)).StateDict().ToDictionary(t => t.Name, t => t.Value);
        var gpt = new Gpt(Tiny, new RandomGenerator(10));
        var before = gpt.StateDict().Select(t => t.Value.ToArray<float>()).ToArray();
        var e = Assert.Throws<StateDictException>(() => gpt.LoadStateDict(other, "other.safetensors"));
        Assert.Contains("'transformer.wte.weight' has shape [7, 6], expected [7, 4]", e.Message);
        Assert.Contains("missing tensor 'transformer.h.1.ln_1.weight'", e.Message);
        Assert.Contains("'transformer.h.0.mlp.c_fc.weight' has shape [24, 6], expected [16, 4]", e.Message);
        var after = gpt.StateDict().Select(t => t.Value.ToArray<float>()).ToArray();
        Assert.Equal(before, after);
    }

    [Fact]
    public void Dropout_is_the_identity_without_noise_or_in_evaluation_and_inverted_in_training()
    {
        var d = new Dropout(0.25);
        var x = (Tensor)NdArray.Ones(new Shape(100_000));
        Assert.Same(x, d.Forward(new Bindings([], [], training: true), x));
        Assert.Same(x, d.Forward(new Bindings([], [], training: false) { Noise = new RandomGenerator(1) }, x));
        var y = d.Forward(new Bindings([], [], training: true) { Noise = new RandomGenerator(1) }, x).ToArray<float>();
        Assert.All(y, v => Assert.True(v == 0 || Math.Abs(v - 1 / 0.75) < 1e-6));
        double dropped = y.Count(v => v == 0) / (double)y.Length;
        Assert.InRange(dropped, 0.24, 0.26);
        Assert.InRange(y.Average(v => (double)v), 0.98, 1.02);
    }

    [Fact]
    public void Sequence_cross_entropy_averages_over_positions()
    {
        var rng = new RandomGenerator(11);
        var logits = rng.Normal(new Shape(2, 3, 5), dtype: DType.Float64);
        var labels = rng.Integers(new Shape(2, 3), 5);
        double expected = Losses.CrossEntropy(logits.Reshape(6, 5), labels.Reshape(6)).ToScalar();
        Assert.Equal(expected, Loss.Of("ce", logits, labels).ToScalar(), 1e-14);
    }
}
