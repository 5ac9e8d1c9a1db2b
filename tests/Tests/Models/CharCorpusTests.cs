using Curvature.Engine;
using Curvature.Models.Data;

namespace Curvature.Tests.Models;

/// <summary>The character-level corpus: vocabulary, splits, windows, and tinyshakespeare's 65 characters.</summary>
public class CharCorpusTests
{
    [Fact]
    public void Vocabulary_is_sorted_splits_are_90_10_and_targets_are_the_inputs_shifted()
    {
        var text = string.Concat(Enumerable.Repeat("To be, or not to be: that is the question.\n", 20));
        var c = new CharCorpus(text);
        Assert.Equal(text.Distinct().Order(), c.Vocabulary);
        Assert.Equal((int)(text.Length * 0.9), c.Train.Length);
        Assert.Equal(text.Length - c.Train.Length, c.Validation.Length);
        Assert.Equal(text, c.Decode(c.Train.Concat(c.Validation)));
        var (x, y) = c.Batch(4, 8, new RandomGenerator(1));
        Assert.Equal(new Shape(4, 8), x.Shape);
        var xs = x.ToArray<long>(); var ys = y.ToArray<long>();
        for (int b = 0; b < 4; b++)
            for (int i = 0; i < 7; i++) Assert.Equal(xs[b * 8 + i + 1], ys[b * 8 + i]);
        var e = Assert.Throws<ArgumentException>(() => c.Encode("to be #"));
        Assert.Contains("'#'", e.Message);
    }

    [Fact]
    public void The_repository_carries_tinyshakespeare_with_its_65_characters()
    {
        var path = Curvature.Lab.Train.DefaultTextPath();
        Assert.True(File.Exists(path), $"{path}: the clone should carry the corpus in data/");
        var c = CharCorpus.Load(path);
        Assert.Equal(65, c.Vocabulary.Count);
        Assert.Equal('\n', c.Vocabulary[0]);
        Assert.InRange(c.Train.Length + c.Validation.Length, 1_000_000, 1_200_000);
    }
}
