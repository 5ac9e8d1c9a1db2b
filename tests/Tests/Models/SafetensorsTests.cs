using System.Buffers.Binary;
using System.Text;
using Curvature.Engine;
using Curvature.Models;

namespace Curvature.Tests.Models;

/// <summary>The safetensors reader and writer: round trips, the reference layout, and every malformed-file rule.</summary>
public class SafetensorsTests
{
    private static byte[] File(string header, byte[] data, ulong? declared = null)
    {
        var h = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + h.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, declared ?? (ulong)h.Length);
        h.CopyTo(bytes, 8);
        data.CopyTo(bytes, 8 + h.Length);
        return bytes;
    }

    private static byte[] Floats(params float[] v) => v.SelectMany(BitConverter.GetBytes).ToArray();

    [Fact]
    public void Round_trip_keeps_names_order_dtypes_shapes_values_and_metadata()
    {
        var rng = new RandomGenerator(1);
        var tensors = new List<(string, NdArray)>
        {
            ("layer.weight", rng.Normal(new Shape(3, 4))),
            ("layer.bias", rng.Normal(new Shape(4), dtype: DType.Float64)),
            ("bn.num_batches_tracked", NdArray.FromArray(new long[] { 7 }, Shape.Scalar)),
            ("empty", NdArray.Zeros(new Shape(0, 5))),
        };
        var meta = new Dictionary<string, string> { ["model"] = "gpt", ["n_head"] = "6" };
        var back = Safetensors.Parse(Safetensors.Serialize(tensors, meta), "x.safetensors");
        Assert.Equal(tensors.Select(t => t.Item1), back.Tensors.Select(t => t.Name));
        for (int i = 0; i < tensors.Count; i++)
        {
            Assert.Equal(tensors[i].Item2.Shape, back.Tensors[i].Tensor.Shape);
            Assert.Equal(tensors[i].Item2.DType, back.Tensors[i].Tensor.DType);
            Assert.Equal(tensors[i].Item2.ToDoubleArray(), back.Tensors[i].Tensor.ToDoubleArray());
        }
        Assert.Equal(meta, back.Metadata);
        Assert.Equal(0, (Safetensors.Serialize(tensors, meta).Length - 8 - tensors.Sum(t => t.Item2.Size * t.Item2.DType.Size())) % 8);
    }

    [Fact]
    public void Reads_the_reference_layout_with_space_padding()
    {
        // As the reference writer lays it out: header padded with spaces, tensors in offset order.
        var bytes = File("{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}   ",
            Floats(1.5f, -2f, 3.25f));
        var f = Safetensors.Parse(bytes, "ref.safetensors").ByName();
        Assert.Equal(new float[] { 1.5f, -2f }, f["a"].ToArray<float>());
        Assert.Equal(new float[] { 3.25f }, f["b"].ToArray<float>());
    }

    public static TheoryData<string, byte[], string> Malformed() => new()
    {
        { "too short", new byte[] { 1, 2, 3 }, "too short" },
        { "header too large", File("{}", [], declared: 100_000_001), "not a safetensors file (its first 8 bytes give a header length of 100000001, over the limit" },
        { "header past the end", File("{}", [], declared: 50), "past the end of the" },
        { "not JSON", File("{\"a\": nope}", []), "not valid JSON" },
        { "not an object", File("[1, 2]", []), "the header does not start with" },
        { "unknown dtype", File("{\"a\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", Floats(1)), "tensor 'a': unknown dtype 'F33'" },
        { "duplicate key", File("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", Floats(1, 2)), "duplicate key 'a'" },
        { "gap", File("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", Floats(1, 2, 3)), "tensor 'b' starts at byte 8 but the previous tensor ends at 4" },
        { "overlap", File("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", Floats(1, 2)), "overlapping" },
        { "byte count", File("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", Floats(1, 2)), "tensor 'a' holds 8 bytes but shape [3] of F32 needs 12" },
        { "trailing bytes", File("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", Floats(1, 2)), "4 trailing bytes" },
        { "missing bytes", File("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", Floats(1)), "short of the last tensor's end" },
        { "overflow", File("{\"a\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,8]}}", Floats(1, 2)), "overflows" },
        { "unsupported dtype", File("{\"a\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]}}", Floats(1)), "dtype BF16, which this engine does not load" },
    };

    [Theory]
    [MemberData(nameof(Malformed))]
    public void Malformed_files_end_in_one_error_naming_the_file_and_the_problem(string _, byte[] bytes, string expected)
    {
        var e = Assert.Throws<SafetensorsException>(() => Safetensors.Parse(bytes, "w.safetensors"));
        Assert.StartsWith("w.safetensors: ", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Invalid_utf8_bytes_in_the_header_are_rejected()
    {
        var bytes = File("{\"a\":1}", []);
        bytes[10] = 0xFF;
        var e = Assert.Throws<SafetensorsException>(() => Safetensors.Parse(bytes, "u.safetensors"));
        Assert.Contains("UTF-8", e.Message);
    }

    [Fact]
    public void Saving_and_loading_a_module_through_a_file_is_atomic_and_strict()
    {
        var dir = Scratch.NewDirectory();
        var path = Path.Combine(dir, "mlp.safetensors");
        var a = Mlp.Create(new RandomGenerator(1), width: 6);
        Safetensors.Save(a, path, new Dictionary<string, string> { ["model"] = "mlp" });
        Assert.Single(Directory.GetFiles(dir));
        var b = Mlp.Create(new RandomGenerator(2), width: 6);
        Assert.Equal("mlp", Safetensors.Load(b, path).Metadata["model"]);
        Assert.Equal(a.StateDict().Select(s => s.Value.ToArray<float>()), b.StateDict().Select(s => s.Value.ToArray<float>()));
        var wrong = Mlp.Create(new RandomGenerator(3), width: 7);
        var e = Assert.Throws<StateDictException>(() => Safetensors.Load(wrong, path));
        Assert.Contains(path, e.Message);
        Assert.Contains("'1.weight' has shape [6, 784], expected [7, 784]", e.Message);
    }
}
