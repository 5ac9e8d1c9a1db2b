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
    /// The model kind of a weights file: its <c>__metadata__</c> "model" (Lab writes it), else what its tensor names
    /// say (<c>transformer.wte.weight</c>: gpt; <c>conv1.weight</c>: resnet20; <c>1.weight</c>: mlp), else null.
    /// </summary>
    public static string? KindOf(SafetensorsFile file)
    {
        if (file.Metadata.TryGetValue("model", out var kind) && Names.Contains(kind)) return kind;
        var names = file.ByName();
        return names.ContainsKey("transformer.wte.weight") ? "gpt" : names.ContainsKey("conv1.weight") ? "resnet20" : names.ContainsKey("1.weight") ? "mlp" : null;
    }

    /// <summary>
    /// Loads <paramref name="path"/> into a new model of kind <paramref name="model"/> (null: the file's own kind,
    /// <see cref="KindOf"/>), strictly (every tensor present with its shape and finite values, tied copies equal,
    /// nothing extra; otherwise one error lists the problems and nothing is built). A file of another kind is
    /// refused saying what it is. MLP: input size, width and classes from <c>1.weight</c> and <c>5.weight</c>; the
    /// activation from the option, else <c>__metadata__</c> "activation", else tanh. ResNet: input channels and
    /// width from <c>conv1.weight</c>, blocks per stage from the <c>layer1.{i}</c> present, classes from
    /// <c>fc.weight</c>. GPT: vocabulary, width, context and layers from the shapes (the layers counted, never
    /// read from a name); heads from the option, else <c>__metadata__</c> "n_head".
    /// </summary>
    public static (Module Model, SafetensorsFile File) Load(string? model, string path, string? activation, int? heads = null)
    {
        var file = Safetensors.Read(path);
        var t = file.ByName();
        string? kind = KindOf(file);
        if (model is null)
            model = kind ?? throw new LabException($"{path}: the file does not say which model it holds (no __metadata__ model, no tensor names of {string.Join(", ", Names)}); give --model.");
        else if (kind is not null && kind != model)
            throw new LabException($"{path}: this file holds a {kind} model ({(file.Metadata.ContainsKey("model") ? "its __metadata__ says so" : "by its tensor names")}), not a {model}; " +
                                   $"give --model {kind}, or leave --model out to use the file's own kind.");
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
                int? fromFile = null;
                if (file.Metadata.TryGetValue("n_head", out var nh))
                    fromFile = int.TryParse(nh, NumberStyles.None, CultureInfo.InvariantCulture, out int h) && h >= 1 ? h
                        : throw new LabException($"{path}: __metadata__ n_head '{nh}' is not a positive integer.");
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

    /// <summary>The loss a verb measures: the one given, else the one the weights file records (Lab train writes it), else mse for the MLP (Cohen et al.) and ce otherwise.</summary>
    public static string LossOf(string? given, SafetensorsFile file, string kind) =>
        given ?? (file.Metadata.GetValueOrDefault("loss") is { } l && Loss.Names.Contains(l) ? l : kind == "mlp" ? "mse" : "ce");

    /// <summary>One line naming the tensors a file stored in a half format and the load widened to float32, or null when none.</summary>
    public static string? WidenedNote(SafetensorsFile file, string path) => file.Widened.Count == 0 ? null
        : $"{path}: {file.Widened.Count} tensor{(file.Widened.Count > 1 ? "s" : "")} stored as {string.Join("/", file.Widened.Select(w => w.From).Distinct())} widened to float32 " +
          $"({string.Join(", ", file.Widened.Take(4).Select(w => w.Name))}{(file.Widened.Count > 4 ? ", …" : "")})";

    /// <summary>
    /// Checks a batch read from <paramref name="path"/> against the model before any work: the inputs fit it (one
    /// example's forward), token ids lie in the vocabulary and labels among the outputs. Errors name the file.
    /// </summary>
    public static void CheckBatch(Module model, Models.Data.Dataset data, string path)
    {
        if (model is Gpt gpt)
        {
            if (data.Inputs.DType != DType.Int64 || data.Inputs.Rank != 2)
                throw new LabException($"{path}: 'inputs' is {data.Inputs.DType.Name()} {data.Inputs.Shape}; a GPT takes int64 token ids [N, T].");
            if (data.Inputs.Shape[1] > gpt.Config.Context)
                throw new LabException($"{path}: sequences of {data.Inputs.Shape[1]} tokens are longer than the model's context of {gpt.Config.Context}.");
            RequireRange(data.Inputs, gpt.Config.Vocabulary, path, "inputs", "token id", "the vocabulary");
            RequireRange(data.Labels, gpt.Config.Vocabulary, path, "targets", "token id", "the vocabulary");
            return;
        }
        if (data.Inputs.DType == DType.Int64) throw new LabException($"{path}: 'inputs' holds int64 token ids; this model takes images (floating point).");
        NdArray logits;
        try { logits = model.Forward(Bindings.Constant(model, training: false), data.Inputs.Slice(0, 0, 1)).Data; }
        catch (ArgumentException e) { throw new LabException($"{path}: 'inputs' {data.Inputs.Shape} do not fit the model: {e.Message.Split(" (Parameter")[0]}"); }
        RequireRange(data.Labels, logits.Shape[^1], path, "targets", "label", $"the model's {logits.Shape[^1]} classes");
    }

    private static void RequireRange(NdArray ids, long count, string path, string tensor, string what, string among)
    {
        var v = ids.ToArray<long>();
        for (int i = 0; i < v.Length; i++)
            if (v[i] < 0 || v[i] >= count)
                throw new LabException($"{path}: '{tensor}' element {i} is {what} {v[i]}, outside {among} (0 to {count - 1}).");
    }
}
