using System.Buffers.Binary;
using System.Text;
using Curvature.Engine;
using Curvature.Models;
using FsCheck;
using FsCheck.Fluent;

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
    public void Every_f16_value_widens_exactly_and_narrows_back_to_its_bits()
    {
        var bits = Enumerable.Range(0, 1 << 16).Select(i => (ushort)i).Where(b => !Half.IsNaN(BitConverter.UInt16BitsToHalf(b))).ToArray();
        var widened = HalfFormats.WidenF16(bits);
        Assert.Equal(bits, HalfFormats.NarrowF16(widened));
        Assert.Equal(65504f, HalfFormats.WidenF16([0x7BFF])[0]);
        Assert.Equal(float.PositiveInfinity, HalfFormats.WidenF16(HalfFormats.NarrowF16([70000f]))[0]);   // beyond 65504: ∞
    }

    [Fact]
    public void Bf16_keeps_the_top_half_and_rounds_to_nearest_even()
    {
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(2000), Prop.ForAll(Gen.Choose(int.MinValue, int.MaxValue).ToArbitrary(), raw =>
        {
            float x = BitConverter.Int32BitsToSingle(raw);
            float y = HalfFormats.WidenBF16(HalfFormats.NarrowBF16([x]))[0];
            if (float.IsNaN(x)) { Assert.True(float.IsNaN(y)); return; }
            // y is a bfloat16 (low 16 bits zero) and the nearest one: no bfloat16 lies closer to x.
            uint yb = BitConverter.SingleToUInt32Bits(y);
            Assert.Equal(0u, yb & 0xFFFF);
            if (float.IsInfinity(y) && !float.IsInfinity(x)) return;                        // rounded past the largest finite bfloat16
            double err = Math.Abs((double)x - y);
            foreach (var neighbor in new[] { yb + 0x10000, yb - 0x10000 })
            {
                float z = BitConverter.UInt32BitsToSingle(neighbor);
                if (float.IsFinite(z) && Math.Sign(z) == Math.Sign(y)) Assert.True(err <= Math.Abs((double)x - z), $"{x}: {y} is not the nearest bfloat16 ({z} is nearer)");
            }
            // Exactly representable values come back unchanged.
            float exact = BitConverter.UInt32BitsToSingle((uint)raw & 0xFFFF0000);
            if (float.IsFinite(exact)) Assert.Equal(exact, HalfFormats.WidenBF16(HalfFormats.NarrowBF16([exact]))[0]);
        }));
        // Ties go to the even neighbor: 1 + 2⁻⁸ lies halfway between 1 and 1 + 2⁻⁷.
        Assert.Equal(1f, HalfFormats.WidenBF16(HalfFormats.NarrowBF16([1f + 1f / 256]))[0]);
        Assert.Equal(1f + 2f / 128, HalfFormats.WidenBF16(HalfFormats.NarrowBF16([1f + 3f / 256]))[0]);
    }

    [Theory]
    [InlineData("F16", 1e-3)]
    [InlineData("BF16", 8e-3)]
    public void Half_files_are_written_on_request_and_read_widened_and_named(string format, double tolerance)
    {
        var rng = new RandomGenerator(3);
        var w = rng.Normal(new Shape(5, 7));
        var labels = NdArray.FromArray(new long[] { 1, 2, 3 });
        var path = Path.Combine(Scratch.NewDirectory(), "half.safetensors");
        Safetensors.Write(path, [("w", w), ("ids", labels)], floatsAs: format);
        var back = Safetensors.Read(path);                                  // through the memory map
        Assert.Equal(new[] { ("w", format) }, back.Widened);
        Assert.Equal(DType.Float32, back.ByName()["w"].DType);
        Assert.Equal(labels.ToArray<long>(), back.ByName()["ids"].ToArray<long>());
        var a = w.ToArray<float>(); var b = back.ByName()["w"].ToArray<float>();
        for (int i = 0; i < a.Length; i++) Assert.True(Math.Abs(a[i] - b[i]) <= tolerance * Math.Max(1, Math.Abs(a[i])), $"{a[i]} → {b[i]}");
        Assert.Equal(Safetensors.Parse(System.IO.File.ReadAllBytes(path), path).Tensors.Select(t => t.Tensor.ToArray<float>()).First(), b);
    }

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
        { "unsupported dtype", File("{\"a\":{\"dtype\":\"U16\",\"shape\":[2],\"data_offsets\":[0,4]}}", Floats(1)), "dtype U16, which this engine does not load; expected F32, F64, I64, F16 or BF16" },
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
