using System.Buffers.Binary;
using System.IO.Compression;

namespace Curvature.Tests.Lab;

/// <summary>Runs the Lab's command line in-process and captures what it printed.</summary>
public static class LabCli
{
    /// <summary>The exit code, standard output and standard error of one invocation.</summary>
    public static (int Code, string Out, string Err) Run(params string[] args)
    {
        var o = new StringWriter(); var e = new StringWriter();
        int code = Curvature.Lab.Cli.Run(args, o, e);
        return (code, o.ToString(), e.ToString());
    }
}

/// <summary>Small inputs the Lab tests make for themselves (tests never download).</summary>
public static class LabFiles
{
    /// <summary>A folder with the four Fashion-MNIST IDX gz files holding random images of the right shape.</summary>
    public static string FakeFashionMnist(int train = 64, int test = 16, int seed = 1)
    {
        var dir = Scratch.NewDirectory("fmnist");
        var r = new Random(seed);
        void Write(string name, int[] dims, byte[] data)
        {
            var b = new byte[4 + 4 * dims.Length + data.Length];
            BinaryPrimitives.WriteInt32BigEndian(b, 0x0800 | dims.Length);
            for (int i = 0; i < dims.Length; i++) BinaryPrimitives.WriteInt32BigEndian(b.AsSpan(4 + 4 * i), dims[i]);
            data.CopyTo(b, 4 + 4 * dims.Length);
            using var f = File.Create(Path.Combine(dir, name));
            using var gz = new GZipStream(f, CompressionLevel.Fastest);
            gz.Write(b);
        }
        foreach (var (prefix, n) in new[] { ("train", train), ("t10k", test) })
        {
            var labels = Enumerable.Range(0, n).Select(_ => (byte)r.Next(10)).ToArray();
            // Images that depend on the label, so there is something to learn.
            var images = new byte[n * 784];
            for (int i = 0; i < n; i++)
                for (int j = 0; j < 784; j++) images[i * 784 + j] = (byte)Math.Clamp(r.Next(60) + (j % 10 == labels[i] ? 150 : 0), 0, 255);
            Write($"{prefix}-images-idx3-ubyte.gz", [n, 28, 28], images);
            Write($"{prefix}-labels-idx1-ubyte.gz", [n], labels);
        }
        return dir;
    }
}
