using System.Buffers.Binary;
using System.IO.Compression;
using Curvature.Engine;
using Curvature.Models.Data;

namespace Curvature.Tests.Models;

/// <summary>IDX parsing (plain and gzip) with its malformed cases, and dataset subsets and batches.</summary>
public class DataTests
{
    private static byte[] IdxBytes(int rank, int[] dims, byte[] data, int? magic = null)
    {
        var b = new byte[4 + 4 * rank + data.Length];
        BinaryPrimitives.WriteInt32BigEndian(b, magic ?? 0x0800 | rank);
        for (int i = 0; i < dims.Length; i++) BinaryPrimitives.WriteInt32BigEndian(b.AsSpan(4 + 4 * i), dims[i]);
        data.CopyTo(b, 4 + 4 * rank);
        return b;
    }

    private static byte[] Gzip(byte[] b)
    {
        var ms = new MemoryStream();
        using (var gz = new GZipStream(ms, CompressionLevel.Fastest, leaveOpen: true)) gz.Write(b);
        return ms.ToArray();
    }

    [Fact]
    public void Reads_plain_and_gzipped_files()
    {
        var data = Enumerable.Range(0, 2 * 3 * 4).Select(i => (byte)i).ToArray();
        var plain = IdxBytes(3, [2, 3, 4], data);
        foreach (var bytes in new[] { plain, Gzip(plain) })
        {
            var (dims, payload) = Idx.Parse(bytes, 3, "x");
            Assert.Equal(new[] { 2, 3, 4 }, dims);
            Assert.Equal(data, payload);
        }
    }

    [Fact]
    public void Wrong_magic_is_named()
    {
        var e = Assert.Throws<InvalidDataException>(() => Idx.Parse(IdxBytes(1, [3], [1, 2, 3], magic: 0x0803), 1, "labels.gz"));
        Assert.Contains("labels.gz: magic 0x00000803", e.Message);
        Assert.Contains("expected 0x00000801", e.Message);
    }

    [Fact]
    public void Short_payload_is_named_as_truncated()
    {
        var e = Assert.Throws<InvalidDataException>(() => Idx.Parse(Gzip(IdxBytes(3, [2, 2, 2], [1, 2, 3])), 3, "images.gz"));
        Assert.Contains("images.gz: truncated", e.Message);
        Assert.Contains("8 bytes of data, the file holds 3", e.Message);
    }

    [Fact]
    public void Corrupt_gzip_is_named()
    {
        var gz = Gzip(IdxBytes(1, [100], new byte[100]));
        var cut = gz[..(gz.Length / 2)];
        var e = Assert.Throws<InvalidDataException>(() => Idx.Parse(cut, 1, "cut.gz"));
        Assert.StartsWith("cut.gz: ", e.Message);
        Assert.Contains("gzip", e.Message);
    }

    [Fact]
    public void Label_out_of_range_is_named_with_its_index()
    {
        var e = Assert.Throws<InvalidDataException>(() => FashionMnist.Labels([1, 9, 10, 3], "train-labels"));
        Assert.Contains("train-labels: label 10 at index 2", e.Message);
    }

    [Fact]
    public void Missing_folder_says_how_to_install_the_data()
    {
        var e = Assert.Throws<InvalidDataException>(() => FashionMnist.Load("/no/such/folder"));
        Assert.Contains("dataset-fashion-mnist", e.Message);
    }

    [Fact]
    public void Shuffled_batches_cover_every_example_once()
    {
        var x = NdArray.FromArray(Enumerable.Range(0, 10 * 3).Select(i => (float)i).ToArray(), new Shape(10, 3));
        var y = NdArray.FromArray(Enumerable.Range(0, 10).Select(i => (long)i).ToArray(), new Shape(10));
        var d = new Dataset(x, y);
        var batches = d.Batches(4, new RandomGenerator(3)).ToArray();
        Assert.Equal(new[] { 4, 4, 2 }, batches.Select(b => b.Count));
        var labels = batches.SelectMany(b => b.Labels.ToArray<long>()).ToArray();
        Assert.Equal(Enumerable.Range(0, 10).Select(i => (long)i), labels.Order());
        Assert.NotEqual(Enumerable.Range(0, 10).Select(i => (long)i), labels);
        // Rows travel with their labels.
        foreach (var b in batches)
        {
            var xs = b.Inputs.ToArray<float>(); var ls = b.Labels.ToArray<long>();
            for (int i = 0; i < b.Count; i++) Assert.Equal(ls[i] * 3, xs[i * 3]);
        }
    }

    [Fact]
    public void Fashion_mnist_from_debian_has_the_expected_shapes_when_installed()
    {
        if (!Directory.Exists(FashionMnist.DefaultFolder)) return; // the package is optional for the tests
        var (train, test) = FashionMnist.Load();
        Assert.Equal(new Shape(60000, 1, 28, 28), train.Inputs.Shape);
        Assert.Equal(10000, test.Count);
        var mean = train.Inputs.Reshape(60000, 784).Sum([0]).ToArray<float>();
        Assert.All(mean, m => Assert.InRange(m / 60000, -1e-4, 1e-4));
        Assert.Equal(10, train.Labels.ToArray<long>().Distinct().Count());
    }
}
