using System.Globalization;
using Curvature.Engine;
using Curvature.Models;

namespace Curvature.Lab;

/// <summary>Builds a model from a weights file: what the shapes determine is read from them, the rest from metadata or options.</summary>
public static class ModelFiles
{
    /// <summary>The model names the verbs accept.</summary>
    public static readonly string[] Names = ["mlp", "resnet20", "gpt"];

    /// <summary>
    /// Loads <paramref name="path"/> into a new model of kind <paramref name="model"/>, strictly (every tensor
    /// present with its shape, nothing extra; otherwise one error lists every problem and nothing is built).
    /// MLP: input size, width and classes from <c>1.weight</c> and <c>5.weight</c>; the activation from the option,
    /// else <c>__metadata__</c> "activation", else tanh. ResNet: input channels and width from <c>conv1.weight</c>,
    /// blocks per stage from the <c>layer1.{i}</c> present, classes from <c>fc.weight</c>. GPT: vocabulary, width,
    /// context and layers from the shapes; heads from the option, else <c>__metadata__</c> "n_head".
    /// </summary>
    public static (Module Model, SafetensorsFile File) Load(string model, string path, string? activation, int? heads = null)
    {
        var file = Safetensors.Read(path);
        var t = file.ByName();
        var dtype = t.Values.FirstOrDefault(v => v.DType != DType.Int64)?.DType ?? DType.Float32;
        Module m;
        switch (model)
        {
            case "mlp":
                int inputs = t.TryGetValue("1.weight", out var w1) && w1.Rank == 2 ? w1.Shape[1] : 784;
                int width = w1 is { Rank: 2 } ? w1.Shape[0] : 200;
                int classes = t.TryGetValue("5.weight", out var w5) && w5.Rank == 2 ? w5.Shape[0] : 10;
                string act = activation ?? (file.Metadata.TryGetValue("activation", out var a) ? a : "tanh");
                if (act is not ("tanh" or "relu")) throw new LabException($"{path}: __metadata__ activation '{act}' is not one of tanh, relu.");
                m = Mlp.Create(new RandomGenerator(0), width, act, inputs, classes, dtype);
                m.LoadStateDict(t, path);
                return (m, file);
            case "resnet20":
                if (!t.TryGetValue("conv1.weight", out var c1) || c1.Rank != 4)
                    throw new StateDictException($"{path} is not a ResNet: it has no [width, C, 3, 3] tensor 'conv1.weight'.");
                int blocks = Enumerable.Range(0, 64).TakeWhile(i => t.ContainsKey($"layer1.{i}.conv1.weight")).Count();
                int outputs = t.TryGetValue("fc.weight", out var fc) && fc.Rank == 2 ? fc.Shape[0] : 10;
                m = new ResNet(new RandomGenerator(0), c1.Shape[1], outputs, c1.Shape[0], Math.Max(1, blocks), dtype);
                m.LoadStateDict(t, path);
                return (m, file);
            case "gpt":
                int? fromFile = file.Metadata.TryGetValue("n_head", out var nh) && int.TryParse(nh, NumberStyles.None, CultureInfo.InvariantCulture, out int h) ? h : null;
                int n = heads ?? fromFile ?? throw new LabException($"{path}: the number of heads is not in the shapes and the file's __metadata__ has no n_head; give --heads.");
                var state = Gpt.WithoutMaskBuffers(t);
                var config = GptConfig.FromStateDict(state, n, path);
                try { config.Validate(); }
                catch (ArgumentException e) { throw new LabException($"{path}: {e.Message}"); }
                m = new Gpt(config, new RandomGenerator(0), dtype);
                m.LoadStateDict(state, path);
                return (m, file);
            default:
                throw new LabException($"model '{model}' is not one of {string.Join(", ", Names)}.");
        }
    }
}
