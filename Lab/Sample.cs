using System.CommandLine;
using System.Text.Json;
using Curvature.Autodiff;
using Curvature.Engine;
using Curvature.Models;
using Curvature.Models.Data;

namespace Curvature.Lab;

/// <summary>
/// <c>Lab sample</c>: generates text from GPT weights, one character at a time: the logits of the last position
/// (over at most the context's worth of characters), divided by the temperature, restricted to the top k,
/// sampled from the seeded stream. The vocabulary comes from the weights' <c>__metadata__</c> (Lab train writes
/// it) or from the corpus given with <c>--text</c>.
/// </summary>
public static class Sample
{
    internal static Command Command(TextWriter output)
    {
        var common = new Cli.CommonOptions();
        var weights = new Option<string>("--weights") { Description = "GPT weights (safetensors, nanoGPT names)", Required = true };
        var prompt = new Option<string>("--prompt") { Description = "Text to continue", DefaultValueFactory = _ => "\n" };
        var tokens = Options.Int("--tokens", "Characters to generate", 500, max: 1_000_000);
        var temperature = Options.Number("--temperature", "Softmax temperature (> 0)", 0.8, 0, minExclusive: true);
        var topK = Options.Int("--top-k", "Sample among the k most likely characters (0: all)", 0, min: 0);
        var heads = Options.OptionalInt("--heads", "Heads when the file's metadata has no n_head", max: 4096);
        var text = new Option<string?>("--text") { Description = "Corpus whose sorted characters are the vocabulary, when the file's metadata has none" };
        var cmd = new Command("sample", "Generate text from GPT weights");
        foreach (var o in new Option[] { weights, prompt, tokens, temperature, topK, heads, text }) cmd.Options.Add(o);
        common.AddTo(cmd);
        cmd.SetAction(r =>
        {
            var device = common.Apply(r, output);
            var path = r.GetValue(weights)!;
            var (model, file) = ModelFiles.Load("gpt", path, null, r.GetValue(heads));
            if (ModelFiles.WidenedNote(file, path) is { } note) output.WriteLine(note);
            model.To(device);
            var vocabulary = Vocabulary(file, path, r.GetValue(text));
            var gpt = (Gpt)model;
            if (vocabulary.Count != gpt.Config.Vocabulary)
                throw new LabException($"{path}: the vocabulary has {vocabulary.Count} characters but the model has {gpt.Config.Vocabulary} token embeddings.");
            var ids = Encode(r.GetValue(prompt)!, vocabulary);
            var generated = Generate(gpt, ids, r.GetValue(tokens), r.GetValue(temperature), r.GetValue(topK), new RandomGenerator(r.GetValue(common.Seed)));
            output.Write(r.GetValue(prompt));
            output.WriteLine(new string(generated.Select(i => vocabulary[(int)i]).ToArray()));
            return 0;
        });
        return cmd;
    }

    private static IReadOnlyList<char> Vocabulary(SafetensorsFile file, string path, string? text)
    {
        if (text is not null) return CharCorpus.Load(text).Vocabulary;
        if (file.Metadata.TryGetValue("vocabulary", out var json))
        {
            try { return (JsonSerializer.Deserialize<string>(json) ?? "").ToCharArray(); }
            catch (JsonException) { throw new LabException($"{path}: __metadata__ vocabulary is not a JSON string."); }
        }
        throw new LabException($"{path}: the file's __metadata__ has no vocabulary; give --text with the corpus the model was trained on.");
    }

    /// <summary>The ids of a prompt; characters outside the vocabulary are all named.</summary>
    public static long[] Encode(string prompt, IReadOnlyList<char> vocabulary)
    {
        if (prompt.Length == 0) throw new LabException("--prompt is empty; give at least one character.");
        var index = vocabulary.Select((c, i) => (c, i)).ToDictionary(p => p.c, p => (long)p.i);
        var unknown = prompt.Where(c => !index.ContainsKey(c)).Distinct().ToArray();
        if (unknown.Length > 0)
            throw new LabException($"the prompt has {unknown.Length} character{(unknown.Length > 1 ? "s" : "")} outside the model's vocabulary of {vocabulary.Count}: " +
                                   string.Join(", ", unknown.Select(c => $"'{c}' (U+{(int)c:X4})")) + ".");
        return prompt.Select(c => index[c]).ToArray();
    }

    /// <summary>Appends <paramref name="count"/> sampled ids to <paramref name="prompt"/> and returns the new ones.</summary>
    public static long[] Generate(Gpt gpt, long[] prompt, int count, double temperature, int topK, RandomGenerator rng)
    {
        var context = new List<long>(prompt);
        var result = new long[count];
        var bindings = Bindings.Constant(gpt, training: false);
        for (int n = 0; n < count; n++)
        {
            // The model refuses sequences longer than its context: condition on the last T characters.
            var window = context.Skip(Math.Max(0, context.Count - gpt.Config.Context)).ToArray();
            var logits = gpt.Forward(bindings, NdArray.FromArray(window, new Shape(1, window.Length), gpt.Parameters()[0].Data.Device)).Data;
            var last = logits.Slice(1, window.Length - 1, 1).Cast(DType.Float64).ToArray<double>();
            double cutoff = double.NegativeInfinity;
            if (topK > 0 && topK < last.Length) cutoff = last.OrderByDescending(v => v).ElementAt(topK - 1);
            double max = last.Max();
            var p = last.Select(v => v < cutoff ? 0 : Math.Exp((v - max) / temperature)).ToArray();
            double u = rng.Uniform(new Shape(1), dtype: DType.Float64).ToScalar() * p.Sum();
            int pick = 0;
            for (double acc = p[0]; acc < u && pick < p.Length - 1; acc += p[++pick]) { }
            result[n] = pick;
            context.Add(pick);
        }
        return result;
    }
}
