using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Curvature.Engine;

namespace Curvature.Models;

/// <summary>The tensors of a safetensors file, in file order, and its string metadata.</summary>
public sealed record SafetensorsFile(IReadOnlyList<(string Name, NdArray Tensor)> Tensors, IReadOnlyDictionary<string, string> Metadata)
{
    /// <summary>Tensors stored as F16 or BF16 and widened to float32 on reading (exactly: every half value is a float), with the stored dtype.</summary>
    public IReadOnlyList<(string Name, string From)> Widened { get; init; } = [];

    /// <summary>The tensors by name.</summary>
    public IReadOnlyDictionary<string, NdArray> ByName() => Tensors.ToDictionary(t => t.Name, t => t.Tensor);
}

/// <summary>A malformed safetensors file; the message names the file and, where there is one, the tensor.</summary>
public sealed class SafetensorsException(string message) : Exception(message);

/// <summary>
/// The safetensors format (Hugging Face): an 8-byte little-endian header length N, N bytes of UTF-8 JSON mapping
/// tensor names to {dtype, shape, data_offsets} (plus an optional "__metadata__" string map), then the data.
/// The reader enforces every rule of the reference implementation: header at most 100,000,000 bytes and inside
/// the file, a UTF-8 JSON object, known dtypes, no duplicate keys, offsets contiguous from 0 with no gaps or
/// overlaps, byte count = shape × dtype size (with overflow checks), and the file ending exactly at the last
/// tensor. Loadable dtypes: F32, F64, I64, and F16 and BF16 (PyTorch's half formats), widened to float32 exactly
/// and listed in <see cref="SafetensorsFile.Widened"/>. Files are read through a memory map, tensor by tensor (no
/// copy of the whole file in memory); <see cref="Serialize"/> stores float tensors as F16 or BF16 on request.
/// </summary>
public static class Safetensors
{
    /// <summary>The reference implementation's header limit.</summary>
    public const long MaxHeaderSize = 100_000_000;

    private static readonly Dictionary<string, int> KnownSizes = new()
    {
        ["BOOL"] = 1, ["U8"] = 1, ["I8"] = 1, ["F8_E5M2"] = 1, ["F8_E4M3"] = 1, ["I16"] = 2, ["U16"] = 2, ["F16"] = 2,
        ["BF16"] = 2, ["I32"] = 4, ["U32"] = 4, ["F32"] = 4, ["F64"] = 8, ["I64"] = 8, ["U64"] = 8,
    };

    private static string Code(DType d) => d switch { DType.Float32 => "F32", DType.Float64 => "F64", _ => "I64" };

    /// <summary>Reads and validates a file through a memory map (the tensors are copied out one by one; the file is never read whole into memory).</summary>
    public static unsafe SafetensorsFile Read(string path)
    {
        if (Directory.Exists(path)) throw new SafetensorsException($"{path} is a folder; expected a safetensors file.");
        if (!File.Exists(path)) throw new SafetensorsException($"{path}: no such file.");
        try
        {
            long length = new FileInfo(path).Length;
            if (length < 8) return Parse(File.ReadAllBytes(path), path);          // a map cannot be empty; the parser names the problem
            using var map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
            using var view = map.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read);
            byte* data = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref data);
            try { return Parse(data + view.PointerOffset, length, path); }
            finally { view.SafeMemoryMappedViewHandle.ReleasePointer(); }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new SafetensorsException($"{path}: cannot read: {e.Message}"); }
    }

    /// <summary>Validates and decodes the bytes of a file; <paramref name="name"/> is used in errors.</summary>
    public static unsafe SafetensorsFile Parse(byte[] bytes, string name)
    {
        fixed (byte* data = bytes) return Parse(data, bytes.Length, name);
    }

    private static unsafe SafetensorsFile Parse(byte* data, long length, string name)
    {
        SafetensorsException Fail(string what) => new($"{name}: {what}");
        if (length < 8) throw Fail($"too short for a safetensors file ({length} bytes; the header length alone takes 8).");
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(data, 8));
        // A file whose first 8 bytes cannot be a header length, or whose header does not open a JSON object, is some other file.
        if (n > MaxHeaderSize || 8 + (long)n > length || length > 8 && n > 0 && data[8] != (byte)'{')
            throw Fail($"not a safetensors file (its first 8 bytes give a header length of {n}, " +
                       (n > MaxHeaderSize ? $"over the limit of {MaxHeaderSize}" : 8 + (long)n > length ? $"past the end of the {length}-byte file" : "and the header does not start with '{'") + ").");
        string header;
        try { header = new UTF8Encoding(false, true).GetString(new ReadOnlySpan<byte>(data + 8, (int)n)); }
        catch (DecoderFallbackException) { throw Fail("header is not valid UTF-8."); }
        if (!header.StartsWith('{')) throw Fail("header does not start with '{'; expected a JSON object.");

        JsonDocument doc;
        try { doc = JsonDocument.Parse(header); }
        catch (JsonException e) { throw Fail($"header is not valid JSON: {e.Message}"); }
        using var _ = doc;
        if (doc.RootElement.ValueKind != JsonValueKind.Object) throw Fail("header is not a JSON object.");

        var entries = new List<(string Name, string DType, long[] Shape, long Begin, long End)>();
        var metadata = new Dictionary<string, string>();
        var seen = new HashSet<string>();
        foreach (var prop in doc.RootElement.EnumerateObject())
        {
            if (!seen.Add(prop.Name)) throw Fail($"duplicate key '{prop.Name}' in the header.");
            if (prop.Name == "__metadata__")
            {
                if (prop.Value.ValueKind != JsonValueKind.Object) throw Fail("__metadata__ is not an object of strings.");
                foreach (var m in prop.Value.EnumerateObject())
                {
                    if (m.Value.ValueKind != JsonValueKind.String) throw Fail($"__metadata__ entry '{m.Name}' is not a string.");
                    if (!metadata.TryAdd(m.Name, m.Value.GetString()!)) throw Fail($"duplicate key '{m.Name}' in __metadata__.");
                }
                continue;
            }
            entries.Add(ParseEntry(prop, Fail));
        }

        // Offsets: sorted by position, contiguous from 0, each the size its dtype and shape say.
        long dataLength = length - 8 - (long)n;
        long last = 0;
        foreach (var e in entries.OrderBy(e => e.Begin).ThenBy(e => e.End))
        {
            string t = $"tensor '{e.Name}'";
            if (e.Begin != last)
                throw Fail(e.Begin > last ? $"{t} starts at byte {e.Begin} but the previous tensor ends at {last}: a gap between offsets."
                                          : $"{t} starts at byte {e.Begin}, inside the previous tensor (ending at {last}): overlapping offsets.");
            if (e.End < e.Begin) throw Fail($"{t} has data_offsets [{e.Begin}, {e.End}] that end before they begin.");
            long count = 1;
            try
            {
                checked
                {
                    foreach (var d in e.Shape) count *= d;
                    long need = count * KnownSizes[e.DType];
                    if (e.End - e.Begin != need)
                        throw Fail($"{t} holds {e.End - e.Begin} bytes but shape [{string.Join(", ", e.Shape)}] of {e.DType} needs {need}.");
                }
            }
            catch (OverflowException) { throw Fail($"{t}: shape [{string.Join(", ", e.Shape)}] of {e.DType} overflows a 64-bit byte count."); }
            last = e.End;
        }
        if (last != dataLength)
            throw Fail(last < dataLength ? $"{dataLength - last} trailing bytes after the last tensor (data ends at {last}, the file holds {dataLength})."
                                         : $"the file is {last - dataLength} bytes short of the last tensor's end ({last}).");

        var tensors = new List<(string, NdArray)>();
        var widened = new List<(string, string)>();
        long dataStart = 8 + (long)n;
        foreach (var e in entries)
        {
            var shape = new Shape(e.Shape.Select(d => d > int.MaxValue ? throw Fail($"tensor '{e.Name}': dimension {d} is too large.") : (int)d).ToArray());
            if (e.End - e.Begin > int.MaxValue) throw Fail($"tensor '{e.Name}' holds {e.End - e.Begin} bytes; one tensor may hold at most {int.MaxValue}.");
            var span = new ReadOnlySpan<byte>(data + dataStart + e.Begin, (int)(e.End - e.Begin));
            NdArray value = e.DType switch
            {
                "F32" => NdArray.FromArray(MemoryMarshal.Cast<byte, float>(span).ToArray(), shape),
                "F64" => NdArray.FromArray(MemoryMarshal.Cast<byte, double>(span).ToArray(), shape),
                "I64" => NdArray.FromArray(MemoryMarshal.Cast<byte, long>(span).ToArray(), shape),
                "F16" => NdArray.FromArray(HalfFormats.WidenF16(MemoryMarshal.Cast<byte, ushort>(span)), shape),
                "BF16" => NdArray.FromArray(HalfFormats.WidenBF16(MemoryMarshal.Cast<byte, ushort>(span)), shape),
                _ => throw Fail($"tensor '{e.Name}' has dtype {e.DType}, which this engine does not load; expected F32, F64, I64, F16 or BF16."),
            };
            if (e.DType is "F16" or "BF16") widened.Add((e.Name, e.DType));
            tensors.Add((e.Name, value));
        }
        return new SafetensorsFile(tensors, metadata) { Widened = widened };
    }

    private static (string Name, string DType, long[] Shape, long Begin, long End) ParseEntry(JsonProperty prop, Func<string, SafetensorsException> fail)
    {
        string t = $"tensor '{prop.Name}'";
        if (prop.Value.ValueKind != JsonValueKind.Object) throw fail($"{t}: expected an object with dtype, shape and data_offsets.");
        string? dtype = null; long[]? shape = null, offsets = null;
        var keys = new HashSet<string>();
        foreach (var f in prop.Value.EnumerateObject())
        {
            if (!keys.Add(f.Name)) throw fail($"{t}: duplicate key '{f.Name}'.");
            switch (f.Name)
            {
                case "dtype":
                    dtype = f.Value.ValueKind == JsonValueKind.String ? f.Value.GetString() : throw fail($"{t}: dtype is not a string.");
                    break;
                case "shape": shape = Integers(f.Value, $"{t}: shape", fail); break;
                case "data_offsets": offsets = Integers(f.Value, $"{t}: data_offsets", fail); break;
                default: throw fail($"{t}: unknown field '{f.Name}'; expected dtype, shape and data_offsets.");
            }
        }
        if (dtype is null || shape is null || offsets is null) throw fail($"{t}: missing {(dtype is null ? "dtype" : shape is null ? "shape" : "data_offsets")}.");
        if (!KnownSizes.ContainsKey(dtype)) throw fail($"{t}: unknown dtype '{dtype}'; expected one of {string.Join(", ", KnownSizes.Keys)}.");
        if (offsets.Length != 2) throw fail($"{t}: data_offsets has {offsets.Length} entries; expected [begin, end].");
        return (prop.Name, dtype, shape, offsets[0], offsets[1]);
    }

    private static long[] Integers(JsonElement e, string what, Func<string, SafetensorsException> fail)
    {
        if (e.ValueKind != JsonValueKind.Array) throw fail($"{what} is not an array.");
        var r = new List<long>();
        foreach (var x in e.EnumerateArray())
        {
            if (x.ValueKind != JsonValueKind.Number || !x.TryGetInt64(out long v) || v < 0) throw fail($"{what} holds {x.GetRawText()}; expected non-negative integers.");
            r.Add(v);
        }
        return r.ToArray();
    }

    /// <summary>
    /// The bytes of a file holding the tensors in the given order (header padded with spaces to 8 bytes).
    /// <paramref name="floatsAs"/> "F16" or "BF16" stores the floating-point tensors in that half format (rounded to
    /// nearest, ties to even; F16 overflows to ±∞ beyond 65504), null keeps their own dtype.
    /// </summary>
    public static byte[] Serialize(IReadOnlyList<(string Name, NdArray Tensor)> tensors, IReadOnlyDictionary<string, string>? metadata = null, string? floatsAs = null)
    {
        if (floatsAs is not (null or "F16" or "BF16")) throw new ArgumentException($"safetensors: floatsAs '{floatsAs}' is not F16 or BF16.");
        bool Half(NdArray t) => floatsAs is not null && t.DType != DType.Int64;
        var names = new HashSet<string>();
        foreach (var (name, _) in tensors)
            if (!names.Add(name) || name == "__metadata__") throw new ArgumentException($"safetensors: tensor name '{name}' is repeated or reserved.");
        using var header = new MemoryStream();
        using (var w = new Utf8JsonWriter(header))
        {
            w.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                w.WriteStartObject("__metadata__");
                foreach (var (k, v) in metadata) w.WriteString(k, v);
                w.WriteEndObject();
            }
            long offset = 0;
            foreach (var (name, t) in tensors)
            {
                long size = t.Size * (Half(t) ? 2 : t.DType.Size());
                w.WriteStartObject(name);
                w.WriteString("dtype", Half(t) ? floatsAs : Code(t.DType));
                w.WriteStartArray("shape");
                foreach (var d in t.Shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset); w.WriteNumberValue(offset + size);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += size;
            }
            w.WriteEndObject();
        }
        int padded = (int)((header.Length + 7) / 8 * 8);
        using var file = new MemoryStream();
        Span<byte> len = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)padded);
        file.Write(len);
        file.Write(header.GetBuffer(), 0, (int)header.Length);
        for (long i = header.Length; i < padded; i++) file.WriteByte((byte)' ');
        foreach (var (_, t) in tensors)
        {
            if (Half(t))
            {
                var v = t.Cast(DType.Float32).ToArray<float>();
                file.Write(MemoryMarshal.AsBytes<ushort>(floatsAs == "F16" ? HalfFormats.NarrowF16(v) : HalfFormats.NarrowBF16(v)));
                continue;
            }
            switch (t.DType)
            {
                case DType.Float32: file.Write(MemoryMarshal.AsBytes<float>(t.ToArray<float>())); break;
                case DType.Float64: file.Write(MemoryMarshal.AsBytes<double>(t.ToArray<double>())); break;
                default: file.Write(MemoryMarshal.AsBytes<long>(t.ToArray<long>())); break;
            }
        }
        return file.ToArray();
    }

    /// <summary>Writes a file atomically (temporary file, flush, rename); <paramref name="floatsAs"/> as in <see cref="Serialize"/>.</summary>
    public static void Write(string path, IReadOnlyList<(string Name, NdArray Tensor)> tensors, IReadOnlyDictionary<string, string>? metadata = null, string? floatsAs = null) =>
        AtomicFile.WriteAllBytes(path, Serialize(tensors, metadata, floatsAs));

    /// <summary>Saves a module's state dict, with optional metadata.</summary>
    public static void Save(Module module, string path, IReadOnlyDictionary<string, string>? metadata = null) => Write(path, module.StateDict(), metadata);

    /// <summary>Loads a file into a module with strict key, shape and dtype checks (all problems listed; nothing changed on error).</summary>
    public static SafetensorsFile Load(Module module, string path)
    {
        var file = Read(path);
        module.LoadStateDict(file.ByName(), path);
        return file;
    }
}
