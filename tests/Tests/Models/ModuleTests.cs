using Curvature.Engine;
using Curvature.Models;

namespace Curvature.Tests.Models;

/// <summary>Modules name their state as PyTorch does, and strict loading reports every problem at once.</summary>
public class ModuleTests
{
    [Fact]
    public void Mlp_state_dict_has_pytorchs_names_shapes_and_count()
    {
        var mlp = Mlp.Create(new RandomGenerator(0));
        var state = mlp.StateDict();
        Assert.Equal(new[] { "1.weight", "1.bias", "3.weight", "3.bias", "5.weight", "5.bias" }, state.Select(s => s.Name));
        Assert.Equal(new[] { new Shape(200, 784), new Shape(200), new Shape(200, 200), new Shape(200), new Shape(10, 200), new Shape(10) }, state.Select(s => s.Value.Shape));
        Assert.Equal(199_210, mlp.ParameterCount());
    }

    [Fact]
    public void Default_initialization_is_uniform_within_one_over_root_fan_in()
    {
        var mlp = Mlp.Create(new RandomGenerator(0));
        foreach (var (name, value) in mlp.StateDict())
        {
            double fanIn = name.StartsWith('1') ? 784 : 200;
            var v = value.ToArray<float>();
            Assert.All(v, x => Assert.InRange(x, -1 / Math.Sqrt(fanIn), 1 / Math.Sqrt(fanIn)));
            if (v.Length > 1000) Assert.InRange(v.Max(), 0.9 / Math.Sqrt(fanIn), 1 / Math.Sqrt(fanIn));
        }
    }

    [Fact]
    public void Loading_a_state_dict_round_trips()
    {
        var a = Mlp.Create(new RandomGenerator(1), width: 8);
        var b = Mlp.Create(new RandomGenerator(2), width: 8);
        b.LoadStateDict(a.StateDict().ToDictionary(s => s.Name, s => s.Value));
        Assert.Equal(a.StateDict().Select(s => s.Value.ToArray<float>()), b.StateDict().Select(s => s.Value.ToArray<float>()));
    }

    [Fact]
    public void Strict_loading_lists_every_missing_unexpected_and_misshaped_tensor_and_changes_nothing()
    {
        var model = Mlp.Create(new RandomGenerator(1), width: 8);
        var before = model.StateDict().Select(s => s.Value).ToArray();
        var state = model.StateDict().ToDictionary(s => s.Name, s => s.Value);
        state.Remove("3.bias");
        state["5.weight"] = NdArray.Zeros(new Shape(10, 9));
        state["7.weight"] = NdArray.Zeros(new Shape(2));
        state["1.bias"] = NdArray.Zeros(new Shape(8), DType.Float64);
        var e = Assert.Throws<StateDictException>(() => model.LoadStateDict(state, "w.safetensors"));
        Assert.Contains("w.safetensors", e.Message);
        Assert.Contains("missing tensor '3.bias' [8]", e.Message);
        Assert.Contains("unexpected tensor '7.weight'", e.Message);
        Assert.Contains("'5.weight' has shape [10, 9], expected [10, 8]", e.Message);
        Assert.Contains("'1.bias' has dtype float64, expected float32", e.Message);
        Assert.Equal(before, model.StateDict().Select(s => s.Value).ToArray());
    }
}

/// <summary>Calibration error against a hand computation.</summary>
public class MetricsTests
{
    [Fact]
    public void Expected_calibration_error_matches_a_hand_computation()
    {
        // Two classes. Rows 0-1: confidence σ(2) ≈ 0.881 (bin 13), one right one wrong → |0.5 − 0.881|.
        // Rows 2-3: logits equal → confidence 0.5 (bin 7), both predicted class 0, labels 0 and 0 → |1 − 0.5|.
        var logits = NdArray.FromArray(new double[] { 2, 0, 2, 0, 0, 0, 0, 0 }, new Shape(4, 2));
        var labels = NdArray.FromArray(new long[] { 0, 1, 0, 0 }, new Shape(4));
        double conf = 1 / (1 + Math.Exp(-2));
        double expected = 0.5 * Math.Abs(0.5 - conf) + 0.5 * Math.Abs(1 - 0.5);
        Assert.Equal(expected, Curvature.Models.Metrics.ExpectedCalibrationError(logits, labels), 1e-12);
        Assert.Equal(0.75, Curvature.Models.Metrics.Accuracy(logits, labels), 1e-12);
        // Sequences [N, T, C] against [N, T]: the same four rows as two sequences of two positions.
        Assert.Equal(0.75, Curvature.Models.Metrics.Accuracy(logits.Reshape(2, 2, 2), labels.Reshape(2, 2)), 1e-12);
    }
}
