using Curvature.Engine;
using Curvature.Models;

namespace Curvature.Lab;

/// <summary>Builds a model from a weights file: what the shapes determine is read from them, the rest from metadata or options.</summary>
public static class ModelFiles
{
    /// <summary>The model names the verbs accept.</summary>
    public static readonly string[] Names = ["mlp"];

    /// <summary>
    /// Loads <paramref name="path"/> into a new model of kind <paramref name="model"/>. For the MLP, the input
    /// size, width and classes come from the shapes of <c>1.weight</c> and <c>5.weight</c>; the activation from
    /// the option, else the file's <c>__metadata__</c> ("activation"), else tanh. Loading is strict.
    /// </summary>
    public static (Module Model, SafetensorsFile File) Load(string model, string path, string? activation)
    {
        var file = Safetensors.Read(path);
        var t = file.ByName();
        switch (model)
        {
            case "mlp":
                int inputs = t.TryGetValue("1.weight", out var w1) && w1.Rank == 2 ? w1.Shape[1] : 784;
                int width = w1 is { Rank: 2 } ? w1.Shape[0] : 200;
                int classes = t.TryGetValue("5.weight", out var w5) && w5.Rank == 2 ? w5.Shape[0] : 10;
                string act = activation ?? (file.Metadata.TryGetValue("activation", out var a) ? a : "tanh");
                if (act is not ("tanh" or "relu")) throw new LabException($"{path}: __metadata__ activation '{act}' is not one of tanh, relu.");
                var dtype = w1?.DType ?? DType.Float32;
                var m = Mlp.Create(new RandomGenerator(0), width, act, inputs, classes, dtype);
                m.LoadStateDict(t, path);
                return (m, file);
            default:
                throw new LabException($"model '{model}' is not one of {string.Join(", ", Names)}.");
        }
    }
}
