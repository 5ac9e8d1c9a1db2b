using System.Buffers.Binary;
using System.IO.Compression;

namespace Curvature.Models.Data;

/// <summary>
/// The IDX format of MNIST and Fashion-MNIST (LeCun et al.): two zero bytes, a type code (0x08 = unsigned
/// byte), the number of dimensions, each dimension as a big-endian int32, then the data. Files may be gzipped
/// (detected by the gzip magic). Every error names the file.
/// </summary>
public static class Idx
{
    /// <summary>Reads an unsigned-byte IDX file with <paramref name="rank"/> dimensions.</summary>
    public static (int[] Dims, byte[] Data) Read(string path, int rank)
    {
        byte[] raw;
        try { raw = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new InvalidDataException($"{path}: cannot read: {e.Message}"); }
        return Parse(raw, rank, path);
    }

    /// <summary>Decodes the bytes of an IDX file (gzipped or not); <paramref name="name"/> is used in errors.</summary>
    public static (int[] Dims, byte[] Data) Parse(byte[] raw, int rank, string name)
    {
        byte[] bytes = raw.Length >= 2 && raw[0] == 0x1F && raw[1] == 0x8B ? Gunzip(raw, name) : raw;
        int expectedMagic = 0x0800 | rank;
        if (bytes.Length < 4) throw new InvalidDataException($"{name}: {bytes.Length} bytes is too short for an IDX header.");
        int magic = BinaryPrimitives.ReadInt32BigEndian(bytes);
        if (magic != expectedMagic)
            throw new InvalidDataException($"{name}: magic 0x{magic:X8} is not an unsigned-byte IDX file of rank {rank} (expected 0x{expectedMagic:X8}).");
        if (bytes.Length < 4 + 4 * rank) throw new InvalidDataException($"{name}: truncated header ({bytes.Length} bytes; the {rank} dimensions need {4 + 4 * rank}).");
        var dims = new int[rank];
        long count = 1;
        for (int i = 0; i < rank; i++)
        {
            dims[i] = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(4 + 4 * i));
            if (dims[i] < 0) throw new InvalidDataException($"{name}: dimension {i} is negative ({dims[i]}).");
            count *= dims[i];
        }
        long payload = bytes.Length - 4 - 4 * rank;
        if (payload != count)
            throw new InvalidDataException(payload < count
                ? $"{name}: truncated: the header promises [{string.Join(" × ", dims)}] = {count} bytes of data, the file holds {payload}."
                : $"{name}: {payload - count} unexpected bytes after the [{string.Join(" × ", dims)}] data.");
        return (dims, bytes.AsSpan(4 + 4 * rank).ToArray());
    }

    private static byte[] Gunzip(byte[] raw, string name)
    {
        try
        {
            using var gz = new GZipStream(new MemoryStream(raw), CompressionMode.Decompress);
            using var output = new MemoryStream();
            gz.CopyTo(output);
            // GZipStream returns what it has when the stream is cut short; the trailer's ISIZE (the
            // uncompressed length mod 2³², RFC 1952) catches that.
            uint isize = BinaryPrimitives.ReadUInt32LittleEndian(raw.AsSpan(raw.Length - 4));
            if (raw.Length < 18 || (uint)output.Length != isize)
                throw new InvalidDataException($"{name}: truncated or corrupt gzip stream (decompressed {output.Length} bytes, the gzip trailer says {isize}).");
            return output.ToArray();
        }
        catch (InvalidDataException e) { throw new InvalidDataException($"{name}: corrupt or truncated gzip stream ({e.Message})."); }
        catch (EndOfStreamException) { throw new InvalidDataException($"{name}: truncated gzip stream."); }
    }
}
