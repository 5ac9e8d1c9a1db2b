using System.Text.Json;
using Curvature.Engine;
using Curvature.Lab;
using Curvature.Models;
using Curvature.Models.Data;
using Curvature.Spectral;

using Curvature.Tests.Spectral;

namespace Curvature.Tests.Lab;

/// <summary>The spectrum verb on a tiny MLP whose dense Hessian can be decomposed directly.</summary>
[Collection(ThreadSettings.Name)]
public class SpectrumCliTests
{
    /// <summary>A float64 MLP (6 inputs, width 5, 3 classes, weights doubled) and a batch of 20, written to <paramref name="dir"/>.</summary>
    internal static (string Weights, string Batch, Module Model, Dataset Data) Files(string dir)
    {
        var rng = new RandomGenerator(4);
        var model = Mlp.Create(rng, width: 5, inputs: 6, classes: 3, dtype: DType.Float64);
        foreach (var p in model.Parameters()) p.Data = p.Data * 2.0;
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

        var op = new HessianOperator(Loss.Function(model, "ce", data.Inputs, data.Labels), model.Parameters().Select(p => p.Data).ToArray());
        int n = (int)op.Dimension;
        Assert.Equal(83, n);
        var (eig, _) = SymmetricEigen.Decompose(DenseMatrix.Of(op));

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
        // Rayleigh quotient along the normalized all-ones vector, computed directly.
        var ones = NdArray.Full(new Shape(n), 1 / Math.Sqrt(n), DType.Float64);
        Assert.Equal(ones.Dot(op.Apply(ones)), root.GetProperty("rayleigh_ones").GetDouble(), 1e-10);
        Assert.True(File.Exists(Path.Combine(dir, "out", "density.png")));
        Assert.Equal(0x89, File.ReadAllBytes(Path.Combine(dir, "out", "density.png"))[0]);
    }

    [Fact]
    public void Per_layer_blocks_match_the_dense_hessians_diagonal_blocks()
    {
        var dir = Scratch.NewDirectory();
        var (w, b, model, data) = Files(dir);
        var json = Path.Combine(dir, "s.json");
        var (code, output, err) = LabCli.Run("spectrum", "--model", "mlp", "--weights", w, "--batch", b, "--loss", "ce", "--topk", "2",
            "--iters", "40", "--probes", "200", "--per-layer", "--json", json);
        Assert.True(code == 0, err + output);
        var h = DenseMatrix.Of(new HessianOperator(Loss.Function(model, "ce", data.Inputs, data.Labels), model.Parameters().Select(p => p.Data).ToArray()));
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var layers = doc.RootElement.GetProperty("per_layer").EnumerateArray().ToArray();
        var named = model.NamedParameters();
        Assert.Equal(named.Select(p => p.Name), layers.Select(l => l.GetProperty("name").GetString()));
        int at = 0;
        for (int l = 0; l < named.Count; l++)
        {
            int size = (int)named[l].Parameter.Shape.Size;
            var block = new double[size, size];
            for (int i = 0; i < size; i++) for (int j = 0; j < size; j++) block[i, j] = h[at + i, at + j];
            var (eig, _) = SymmetricEigen.Decompose(block);
            var expected = eig.OrderDescending().Take(Math.Min(2, size)).ToArray();
            var top = layers[l].GetProperty("top_eigenvalues").EnumerateArray().Select(x => x.GetDouble()).ToArray();
            Assert.Equal(expected.Length, top.Length);
            for (int i = 0; i < top.Length; i++) Assert.Equal(expected[i], top[i], 1e-7);
            double trace = layers[l].GetProperty("trace").GetDouble(), stderr = layers[l].GetProperty("trace_stderr").GetDouble();
            Assert.True(Math.Abs(trace - eig.Sum()) <= 5 * stderr + 1e-9, $"{named[l].Name}: trace {trace} ± {stderr} vs {eig.Sum()}");
            at += size;
        }
        Assert.Contains("| 3.weight | 25 |", output);
        Assert.All(layers, l => Assert.InRange(l.GetProperty("iterations").GetInt32(), 1, 40));
        // The blocks' samples are the report's own probes split by block, so over every block they sum to its trace.
        double whole = doc.RootElement.GetProperty("trace").GetDouble();
        double sum = layers.Sum(l => l.GetProperty("trace").GetDouble());
        Assert.True(Math.Abs(sum - whole) <= 1e-9 * Math.Abs(whole), $"Σ block traces {sum:R} against the report's trace {whole:R}");
    }

    [Fact]
    public void Per_layer_takes_module_prefixes_and_names_an_unknown_one()
    {
        var dir = Scratch.NewDirectory();
        var (w, b, _, _) = Files(dir);
        var json = Path.Combine(dir, "s.json");
        var (code, output, err) = LabCli.Run("spectrum", "--weights", w, "--batch", b, "--iters", "10", "--probes", "2", "--per-layer", "3", "5.bias", "--json", json);
        Assert.True(code == 0, err + output);
        using (var doc = JsonDocument.Parse(File.ReadAllText(json)))
            Assert.Equal(new[] { "3.weight", "3.bias", "5.bias" }, doc.RootElement.GetProperty("per_layer").EnumerateArray().Select(l => l.GetProperty("name").GetString()));
        (code, _, err) = LabCli.Run("spectrum", "--weights", w, "--batch", b, "--per-layer", "layer9");
        Assert.Equal(2, code);
        Assert.Contains("'layer9' names no parameter of this model", err);
        Assert.Contains("1, 3, 5", err); // the modules it has
    }

    [Fact]
    public void Eigenvectors_are_state_dicts_that_satisfy_the_eigen_equation()
    {
        var dir = Scratch.NewDirectory();
        var (w, b, model, data) = Files(dir);
        var json = Path.Combine(dir, "s.json");
        var vectors = Path.Combine(dir, "vectors");
        var (code, output, err) = LabCli.Run("spectrum", "--weights", w, "--batch", b, "--loss", "ce", "--topk", "3", "--iters", "83", "--probes", "1", "--vectors", vectors, "--json", json);
        Assert.True(code == 0, err + output);
        var op = new HessianOperator(Loss.Function(model, "ce", data.Inputs, data.Labels), model.Parameters().Select(p => p.Data).ToArray());
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var top = doc.RootElement.GetProperty("top_eigenvalues").EnumerateArray().Select(x => x.GetDouble()).ToArray();
        for (int i = 0; i < 3; i++)
        {
            var file = Safetensors.Read(Path.Combine(vectors, $"eigenvector_{i}.safetensors"));
            Assert.Equal(model.NamedParameters().Select(p => p.Name), file.Tensors.Select(t => t.Name));
            double lambda = double.Parse(file.Metadata["eigenvalue"], System.Globalization.CultureInfo.InvariantCulture);
            Assert.Equal(top[i], lambda);
            var v = Vectors.Flatten(file.Tensors.Select(t => t.Tensor).ToArray());
            Assert.Equal(1.0, Vectors.Norm(v), 1e-12);
            var r = op.Apply(v) - v * lambda;
            Assert.True(Vectors.Norm(r) / Math.Abs(lambda) < 1e-8, $"eigenvector {i}: relative residual {Vectors.Norm(r) / Math.Abs(lambda)}");
        }
        Assert.Equal(3, doc.RootElement.GetProperty("eigenvector_files").GetArrayLength());
    }

    [Fact]
    public void Hutch_plus_plus_is_reported_beside_hutchinson_at_the_same_budget()
    {
        var dir = Scratch.NewDirectory();
        var (w, b, model, data) = Files(dir);
        var json = Path.Combine(dir, "s.json");
        var (code, output, err) = LabCli.Run("spectrum", "--weights", w, "--batch", b, "--loss", "ce", "--iters", "10", "--probes", "2", "--trace", "hutch++", "--trace-budget", "90", "--json", json);
        Assert.True(code == 0, err + output);
        var (eig, _) = SymmetricEigen.Decompose(DenseMatrix.Of(new HessianOperator(Loss.Function(model, "ce", data.Inputs, data.Labels), model.Parameters().Select(p => p.Data).ToArray())));
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var c = doc.RootElement.GetProperty("trace_comparison");
        Assert.Equal(90, c.GetProperty("budget").GetInt32());
        foreach (var method in new[] { "hutchinson", "hutch++" })
        {
            double t = c.GetProperty(method).GetProperty("trace").GetDouble(), se = c.GetProperty(method).GetProperty("stderr").GetDouble();
            Assert.True(Math.Abs(t - eig.Sum()) <= 5 * se + 1e-6 * Math.Abs(eig.Sum()), $"{method}: {t} ± {se} vs {eig.Sum()}");
        }
        Assert.Contains("trace (Hutch++, 90 products)", output);

        (code, _, err) = LabCli.Run("spectrum", "--weights", w, "--batch", b, "--trace", "hutch++", "--trace-budget", "10");
        Assert.Equal(2, code);
        Assert.Contains("expected a multiple of 3", err);
    }

    [Theory]
    [InlineData("ggn")]
    [InlineData("fisher")]
    [InlineData("empirical-fisher")]
    [InlineData("kfac")]
    [InlineData("ekfac")]
    public void Every_operator_reports_the_spectrum_of_the_matrix_it_names(string name)
    {
        var dir = Scratch.NewDirectory();
        var (w, b, model, data) = Files(dir);
        var json = Path.Combine(dir, "s.json");
        var (code, output, err) = LabCli.Run("spectrum", "--weights", w, "--batch", b, "--loss", "ce", "--topk", "2", "--iters", "83", "--probes", "2",
            "--operator", name, "--json", json, "--seed", "3");
        Assert.True(code == 0, err + output);
        var ps = model.Parameters().Select(p => p.Data).ToArray();
        ILinearOperator expected;
        if (name is "ggn" or "fisher") expected = GaussNewtonOperator.ForModel(model, "ce", data.Inputs, data.Labels);
        else if (name is "kfac" or "ekfac") expected = KroneckerFactoredCurvature.Compute(model, "ce", data.Inputs, new RandomGenerator(3), eigenvalueCorrected: name == "ekfac");
        else
        {
            // (1/N)·Σ gᵢgᵢᵀ from batches of one, independently of the operator's own per-example machinery.
            int n = data.Count, dim = (int)model.ParameterCount();
            var f = new double[dim, dim];
            for (int i = 0; i < n; i++)
            {
                var g = Vectors.Flatten(Curvature.Autodiff.Derivatives.Grad(Loss.Function(model, "ce", data.Inputs.Rows(i, 1), data.Labels.Rows(i, 1)),
                    ps.Select(p => (Curvature.Autodiff.Tensor)p).ToArray()).Select(t => t.Data).ToArray()).ToArray<double>();
                for (int r = 0; r < dim; r++) for (int c = 0; c < dim; c++) f[r, c] += g[r] * g[c] / n;
            }
            var flat = new double[dim * dim];
            for (int r = 0; r < dim; r++) for (int c = 0; c < dim; c++) flat[r * dim + c] = f[r, c];
            expected = new DenseOperator(NdArray.FromArray(flat, new Shape(dim, dim)));
        }
        var (eig, _) = SymmetricEigen.Decompose(DenseMatrix.Of(expected));
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        Assert.Equal(name, doc.RootElement.GetProperty("operator").GetString());
        var top = doc.RootElement.GetProperty("top_eigenvalues").EnumerateArray().Select(x => x.GetDouble()).ToArray();
        var want = eig.OrderDescending().Take(2).ToArray();
        for (int i = 0; i < 2; i++) Assert.Equal(want[i], top[i], 1e-7 * Math.Max(1, Math.Abs(want[i])));
    }

    private sealed class ScaledLinear : Curvature.Models.Module
    {
        private readonly Curvature.Models.Parameter scale;
        private readonly Curvature.Models.Layers.Linear fc;
        public ScaledLinear(RandomGenerator rng)
        {
            scale = AddParameter("scale", NdArray.Ones(new Shape(4)));
            fc = AddModule("fc", new Curvature.Models.Layers.Linear(4, 3, rng));
        }
        public override Curvature.Autodiff.Tensor Forward(Bindings b, Curvature.Autodiff.Tensor x) => fc.Forward(b, x * b[scale]);
    }

    [Fact]
    public void Kfac_of_a_model_with_parameters_it_has_no_block_for_is_refused_naming_them()
    {
        var rng = new RandomGenerator(2);
        var model = new ScaledLinear(rng);
        var data = new Dataset(rng.Normal(new Shape(4, 4)), rng.Integers(new Shape(4), 3));
        var e = Assert.Throws<UsageException>(() => Spectrum.Run(model, data, "ce", true, topk: 1, iterations: 3, probes: 1, chunk: 10, new RandomGenerator(1),
            extras: new Spectrum.Extras(Operator: "kfac")));
        Assert.Contains("K-FAC has no block for 1 parameter(s) of this model (scale)", e.Message);
    }

    [Fact]
    public void A_non_hessian_operators_per_layer_blocks_are_its_diagonal_blocks()
    {
        var dir = Scratch.NewDirectory();
        var (w, b, model, data) = Files(dir);
        var json = Path.Combine(dir, "s.json");
        var (code, output, err) = LabCli.Run("spectrum", "--weights", w, "--batch", b, "--loss", "ce", "--topk", "1", "--iters", "30", "--probes", "2",
            "--operator", "ggn", "--per-layer", "3.weight", "--json", json);
        Assert.True(code == 0, err + output);
        var ggn = DenseMatrix.Of(GaussNewtonOperator.ForModel(model, "ce", data.Inputs, data.Labels));
        int at = (int)(model.Parameters()[0].Shape.Size + model.Parameters()[1].Shape.Size); // 1.weight, 1.bias come first
        var block = new double[25, 25];
        for (int i = 0; i < 25; i++) for (int j = 0; j < 25; j++) block[i, j] = ggn[at + i, at + j];
        var (eig, _) = SymmetricEigen.Decompose(block);
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var layer = doc.RootElement.GetProperty("per_layer")[0];
        Assert.Equal("3.weight", layer.GetProperty("name").GetString());
        Assert.Equal(eig.Max(), layer.GetProperty("top_eigenvalues")[0].GetDouble(), 1e-7);
    }

    [Fact]
    public void Vectors_into_a_file_are_refused_before_any_work()
    {
        var dir = Scratch.NewDirectory();
        var (w, b, _, _) = Files(dir);
        var (code, output, err) = LabCli.Run("spectrum", "--weights", w, "--batch", b, "--vectors", w);
        Assert.Equal(1, code);
        Assert.Contains("is a file; expected a folder", err);
        Assert.DoesNotContain("Hessian-vector products planned", output);
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
