using System.Text.Json;
using Curvature.Engine;
using Curvature.Lab;
using Curvature.Models;
using Curvature.Models.Data;
using Curvature.Spectral;

namespace Curvature.Tests.Lab;

/// <summary>The spectrum verb on a tiny MLP whose dense Hessian can be decomposed directly.</summary>
[Collection(ThreadSettings.Name)]
public class SpectrumCliTests
{
    private static (string Weights, string Batch, Module Model, Dataset Data) Files(string dir)
    {
        var rng = new RandomGenerator(4);
        var model = Mlp.Create(rng, width: 5, inputs: 6, classes: 3, dtype: DType.Float64);
        foreach (var p in model.Parameters()) p.Value = p.Value * 2.0;
        var data = new Dataset(rng.Normal(new Shape(20, 6), dtype: DType.Float64), rng.Integers(new Shape(20), 3));
        string w = Path.Combine(dir, "w.safetensors"), b = Path.Combine(dir, "b.safetensors");
        Safetensors.Save(model, w);
        BatchFile.Write(b, data.Inputs, data.Labels);
        return (w, b, model, data);
    }

    [Fact]
    public void Top_eigenvalues_and_trace_match_the_dense_hessian()
    {
        var dir = Scratch.NewDirectory();
        var (w, b, model, data) = Files(dir);
        var json = Path.Combine(dir, "s.json");
        var (code, output, err) = LabCli.Run("spectrum", "--model", "mlp", "--weights", w, "--batch", b, "--loss", "ce", "--topk", "3",
            "--iters", "83", "--probes", "4", "--chunk", "7", "--json", json, "--out", Path.Combine(dir, "out"));
        Assert.True(code == 0, err + output);

        var op = new HessianOperator(Loss.Function(model, "ce", data.Inputs, data.Labels), model.Parameters().Select(p => p.Value).ToArray());
        int n = (int)op.Dimension;
        Assert.Equal(83, n);
        var h = new double[n, n];
        for (int j = 0; j < n; j++)
        {
            var e = new double[n]; e[j] = 1;
            var col = op.Apply(NdArray.FromArray(e, new Shape(n))).ToArray<double>();
            for (int i = 0; i < n; i++) h[i, j] = col[i];
        }
        var (eig, _) = SymmetricEigen.Decompose(h);

        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var root = doc.RootElement;
        var top = root.GetProperty("top_eigenvalues").EnumerateArray().Select(x => x.GetDouble()).ToArray();
        var expected = eig.OrderDescending().Take(3).ToArray();
        for (int i = 0; i < 3; i++) Assert.Equal(expected[i], top[i], 1e-8);
        double trace = root.GetProperty("trace").GetDouble(), stderr = root.GetProperty("trace_stderr").GetDouble();
        Assert.True(Math.Abs(trace - eig.Sum()) <= 5 * stderr + 1e-9, $"trace {trace} ± {stderr} vs {eig.Sum()}");
        foreach (var key in new[] { "loss", "grad_norm", "residuals", "rayleigh_ones", "density" }) Assert.True(root.TryGetProperty(key, out _), key);
        var grid = root.GetProperty("density").GetProperty("grid").EnumerateArray().Select(x => x.GetDouble()).ToArray();
        var values = root.GetProperty("density").GetProperty("values").EnumerateArray().Select(x => x.GetDouble()).ToArray();
        double integral = 0;
        for (int i = 1; i < grid.Length; i++) integral += 0.5 * (values[i] + values[i - 1]) * (grid[i] - grid[i - 1]);
        Assert.Equal(1.0, integral, 1e-2);
        // Rayleigh quotient along the normalised all-ones vector, computed directly.
        var ones = NdArray.Full(new Shape(n), 1 / Math.Sqrt(n), DType.Float64);
        Assert.Equal(ones.Dot(op.Apply(ones)), root.GetProperty("rayleigh_ones").GetDouble(), 1e-10);
        Assert.True(File.Exists(Path.Combine(dir, "out", "density.png")));
        Assert.Equal(0x89, File.ReadAllBytes(Path.Combine(dir, "out", "density.png"))[0]);
    }

    [Fact]
    public void Residuals_are_measured_on_the_operator_not_the_tridiagonals_estimate()
    {
        // On a float32 operator ‖Hy − θy‖/|θ| cannot fall much below float32's precision; β_m·|s_m| (the
        // tridiagonal's estimate, exact only in exact arithmetic) reports 1e-17 and looks impossibly good.
        var model = Mlp.Create(new RandomGenerator(3), width: 6, inputs: 5, classes: 3);
        var rng = new RandomGenerator(4);
        var data = new Dataset(rng.Normal(new Shape(40, 5)), NdArray.FromArray(Enumerable.Range(0, 40).Select(i => (long)(i % 3)).ToArray()));
        int dimension = (int)model.ParameterCount();
        var report = Spectrum.Run(model, data, "ce", false, topk: 2, iterations: dimension, probes: 1, chunk: 100, new RandomGenerator(5));
        Assert.All(report.Residuals, r => Assert.InRange(r, 1e-9, 1e-3));
    }

    [Fact]
    public void Weights_for_another_shape_list_every_problem()
    {
        var dir = Scratch.NewDirectory();
        var (w, b, _, _) = Files(dir);
        var bad = Path.Combine(dir, "bad.safetensors");
        var tensors = Safetensors.Read(w).Tensors.Where(t => t.Name != "3.bias").Append(("extra", NdArray.Zeros(new Shape(2)))).ToArray();
        Safetensors.Write(bad, tensors);
        var (code, _, err) = LabCli.Run("spectrum", "--weights", bad, "--batch", b);
        Assert.Equal(1, code);
        Assert.Contains("missing tensor '3.bias'", err);
        Assert.Contains("unexpected tensor 'extra'", err);
        Assert.Contains(bad, err);
    }

    [Fact]
    public void A_batch_file_without_targets_is_named()
    {
        var dir = Scratch.NewDirectory();
        var (w, _, _, data) = Files(dir);
        var b = Path.Combine(dir, "nolabels.safetensors");
        Safetensors.Write(b, [("inputs", data.Inputs)]);
        var (code, _, err) = LabCli.Run("spectrum", "--weights", w, "--batch", b);
        Assert.Equal(1, code);
        Assert.Contains("no tensor 'targets'", err);
    }

    [Fact]
    public void Missing_required_options_exit_with_code_2()
    {
        var (code, _, _) = LabCli.Run("spectrum", "--model", "mlp");
        Assert.Equal(2, code);
    }
}
