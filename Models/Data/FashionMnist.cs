using Curvature.Engine;

namespace Curvature.Models.Data;

/// <summary>
/// Fashion-MNIST (Xiao, Rasul and Vollgraf 2017): 60,000 training and 10,000 test images of 28×28 grey pixels in
/// 10 classes, read from the IDX gz files of Debian's <c>dataset-fashion-mnist</c>. Default preprocessing: pixels
/// divided by 255, then centered by subtracting the per-pixel mean of the 60,000 training images (the same mean
/// for the test set and for any subset). Inputs are [N, 1, 28, 28] float32; the MLP flattens them.
/// </summary>
public static class FashionMnist
{
    /// <summary>Where Debian's package installs the files.</summary>
    public const string DefaultFolder = "/usr/share/datasets/fashion-mnist";

    /// <summary>Number of classes.</summary>
    public const int Classes = 10;

    /// <summary>Loads both splits from a folder holding the four IDX gz files.</summary>
    public static (Dataset Train, Dataset Test) Load(string folder = DefaultFolder, bool center = true)
    {
        if (!Directory.Exists(folder))
            throw new InvalidDataException($"{folder}: folder not found; install Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist) or pass the folder holding the IDX files.");
        var (trainImages, trainY) = ReadSplit(folder, "train");
        var (testImages, testY) = ReadSplit(folder, "t10k");
        var train = Scale(trainImages);
        var test = Scale(testImages);
        if (center)
        {
            var mean = PixelMean(train);
            Subtract(train, mean);
            Subtract(test, mean);
        }
        return (new Dataset(Images(train), trainY), new Dataset(Images(test), testY));
    }

    private static (byte[] Images, NdArray Labels) ReadSplit(string folder, string prefix)
    {
        string imagesPath = Path.Combine(folder, $"{prefix}-images-idx3-ubyte.gz");
        string labelsPath = Path.Combine(folder, $"{prefix}-labels-idx1-ubyte.gz");
        var (dims, images) = Idx.Read(imagesPath, 3);
        var (ldims, labels) = Idx.Read(labelsPath, 1);
        if (dims[1] != 28 || dims[2] != 28) throw new InvalidDataException($"{imagesPath}: images are {dims[1]}×{dims[2]}; expected 28×28.");
        if (dims[0] != ldims[0]) throw new InvalidDataException($"{imagesPath} holds {dims[0]} images but {labelsPath} holds {ldims[0]} labels.");
        return (images, Labels(labels, labelsPath));
    }

    /// <summary>Validates labels 0–9 and widens them to int64.</summary>
    public static NdArray Labels(byte[] labels, string name)
    {
        var l = new long[labels.Length];
        for (int i = 0; i < labels.Length; i++)
        {
            if (labels[i] >= Classes) throw new InvalidDataException($"{name}: label {labels[i]} at index {i} is outside 0–{Classes - 1}.");
            l[i] = labels[i];
        }
        return NdArray.FromArray(l, new Shape(l.Length));
    }

    private const int PixelsPerImage = 28 * 28;

    private static float[] Scale(byte[] images)
    {
        var x = new float[images.Length];
        for (int i = 0; i < x.Length; i++) x[i] = images[i] / 255f;
        return x;
    }

    private static float[] PixelMean(float[] x)
    {
        int n = x.Length / PixelsPerImage;
        var sum = new double[PixelsPerImage];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < PixelsPerImage; j++) sum[j] += x[i * PixelsPerImage + j];
        return sum.Select(v => (float)(v / n)).ToArray();
    }

    private static void Subtract(float[] x, float[] mean)
    {
        for (int i = 0; i < x.Length; i++) x[i] -= mean[i % PixelsPerImage];
    }

    private static NdArray Images(float[] x) => NdArray.FromArray(x, new Shape(x.Length / PixelsPerImage, 1, 28, 28));
}
