using System.Text.Json;
using Curvature.Engine;
using Curvature.Models;
using Curvature.Models.Data;
using Curvature.Spectral;

namespace Curvature.Tests.Lab;

/// <summary>Lab noise on a small float64 MLP: the JSON's names and figures are GradientNoise's, and the noise along each eigenvector is its own JVP.</summary>
[Collection(ThreadSettings.Name)]
public class NoiseCliTests
{
    [Fact]
    public void Noise_writes_every_named_quantity_and_they_agree_with_the_library()
    {
        var dir = Scratch.NewDirectory();
        var model = Mlp.Create(new RandomGenerator(1), width: 6, inputs: 5, classes: 3, dtype: DType.Float64);
        var weights = Path.Combine(dir, "w.safetensors");
        Safetensors.Save(model, weights, new Dictionary<string, string> { ["model"] = "mlp", ["activation"] = "tanh", ["loss"] = "ce" });
        var rng = new RandomGenerator(2);
        var x = rng.Normal(new Shape(40, 5), dtype: DType.Float64);
        var y = NdArray.FromArray(Enumerable.Range(0, 40).Select(i => (long)(i % 3)).ToArray());
        var batch = Path.Combine(dir, "b.safetensors");
        BatchFile.Write(batch, x, y);
        var json = Path.Combine(dir, "n.json");
        var (code, output, err) = LabCli.Run("noise", "--weights", weights, "--batch", batch, "--topk", "2", "--iters", "63", "--minibatch", "8", "--samples", "5", "--json", json);
        Assert.True(code == 0, err + output);
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var root = doc.RootElement;
        foreach (var key in new[] { "loss", "gradient_norm", "noise_trace", "noise_scale", "top_eigenvalues", "noise_along_top", "gradient_sharpness", "batch_sharpness", "batch_sharpness_stderr", "batch_sharpness_ratio_of_means", "batch_sharpness_ratio_of_means_stderr" })
            Assert.True(root.TryGetProperty(key, out _), key);
        Assert.Equal("ce", root.GetProperty("loss_kind").GetString());
        var noise = new GradientNoise(model, "ce", x, y, training: true);
        double trace = noise.TraceExact();
        Assert.Equal(trace, root.GetProperty("noise_trace").GetDouble(), 1e-9 * trace);
        var (_, g) = noise.LossAndGradient();
        Assert.Equal(trace / ParameterVector.Dot(g, g), root.GetProperty("noise_scale").GetDouble(), 1e-9 * trace);
        Assert.Equal(noise.GradientSharpness(), root.GetProperty("gradient_sharpness").GetDouble(), 1e-9);
        // vᵀΣv ≤ λmax(Σ) ≤ tr Σ for unit v, and the eigenvalues are the dense Hessian's.
        Assert.All(root.GetProperty("noise_along_top").EnumerateArray(), v => Assert.InRange(v.GetDouble(), 0, trace));
        Assert.Contains("noise trace tr Σ (exact)", output);
    }
}
