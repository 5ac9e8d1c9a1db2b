using Curvature.Engine;

namespace Curvature.Models.Data;

/// <summary>
/// A character-level text corpus (tinyshakespeare for the GPT): the vocabulary is the sorted set of characters
/// of the whole text (65 for tinyshakespeare), the first 90% of the encoded text is the training split and the
/// last 10% the validation split, and batches are random windows of T + 1 characters, the inputs being the
/// first T and the targets the last T.
/// </summary>
public sealed class CharCorpus
{
    private readonly Dictionary<char, long> index;

    /// <summary>Builds the vocabulary and splits from a text.</summary>
    public CharCorpus(string text, string name = "text")
    {
        if (text.Length < 20) throw new InvalidDataException($"{name}: {text.Length} characters is too short for a corpus.");
        Vocabulary = text.Distinct().Order().ToArray();
        index = Vocabulary.Select((c, i) => (c, (long)i)).ToDictionary(p => p.c, p => p.Item2);
        var ids = Encode(text);
        int split = (int)(ids.Length * 0.9);
        Train = ids[..split];
        Validation = ids[split..];
    }

    /// <summary>Reads a UTF-8 text file.</summary>
    public static CharCorpus Load(string path)
    {
        try { return new CharCorpus(File.ReadAllText(path), path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new InvalidDataException($"{path}: cannot read: {e.Message}"); }
    }

    /// <summary>The characters, sorted; a character's id is its index.</summary>
    public IReadOnlyList<char> Vocabulary { get; }

    /// <summary>The training ids (first 90%).</summary>
    public long[] Train { get; }

    /// <summary>The validation ids (last 10%).</summary>
    public long[] Validation { get; }

    /// <summary>Ids of a string; a character outside the vocabulary is named.</summary>
    public long[] Encode(string s) => s.Select((c, i) => index.TryGetValue(c, out var id) ? id
        : throw new ArgumentException($"character '{c}' (U+{(int)c:X4}) at position {i} is not in the corpus's vocabulary of {Vocabulary.Count}.")).ToArray();

    /// <summary>The string of a sequence of ids.</summary>
    public string Decode(IEnumerable<long> ids) => new(ids.Select(i => i >= 0 && i < Vocabulary.Count ? Vocabulary[(int)i]
        : throw new ArgumentException($"id {i} is outside the vocabulary of {Vocabulary.Count}.")).ToArray());

    /// <summary>
    /// <paramref name="batch"/> random windows of T + 1 characters from the training or validation split:
    /// inputs [batch, T] and targets [batch, T] (the inputs shifted by one), both int64.
    /// </summary>
    public (NdArray Inputs, NdArray Targets) Batch(int batch, int t, RandomGenerator rng, bool validation = false)
    {
        var ids = validation ? Validation : Train;
        if (t < 1 || ids.Length < t + 1) throw new ArgumentException($"corpus: windows of {t + 1} characters do not fit in a split of {ids.Length}.");
        var starts = rng.Integers(new Shape(batch), ids.Length - t).ToArray<long>();
        var x = new long[batch * t];
        var y = new long[batch * t];
        for (int b = 0; b < batch; b++)
        {
            Array.Copy(ids, starts[b], x, b * t, t);
            Array.Copy(ids, starts[b] + 1, y, b * t, t);
        }
        return (NdArray.FromArray(x, new Shape(batch, t)), NdArray.FromArray(y, new Shape(batch, t)));
    }
}
