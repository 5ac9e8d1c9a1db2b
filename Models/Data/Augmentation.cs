using Curvature.Engine;

namespace Curvature.Models.Data;

/// <summary>
/// The standard augmentation of small-image training (He et al. 2016): pad each image by p pixels of zeros on
/// every side and crop a random H×W window (torchvision's RandomCrop(H, padding=p)), then flip it left–right with
/// probability ½ (RandomHorizontalFlip). Draws come from the seeded stream, so a run repeats exactly.
/// </summary>
public static class Augmentation
{
    /// <summary>Randomly cropped (and, when <paramref name="flip"/>, flipped) copies of float32 images [N, C, H, W].</summary>
    public static NdArray CropAndFlip(NdArray images, int padding, bool flip, RandomGenerator rng)
    {
        if (images.Rank != 4 || images.DType != DType.Float32)
            throw new ArgumentException($"augmentation: images {images.DType.Name()} {images.Shape}; expected float32 [N, C, H, W].");
        if (padding < 0) throw new ArgumentException($"augmentation: padding {padding}; expected ≥ 0.");
        int n = images.Shape[0], c = images.Shape[1], h = images.Shape[2], w = images.Shape[3];
        var dy = rng.Integers(new Shape(n), 2 * padding + 1).ToArray<long>();
        var dx = rng.Integers(new Shape(n), 2 * padding + 1).ToArray<long>();
        var mirror = flip ? rng.Integers(new Shape(n), 2).ToArray<long>() : new long[n];
        var src = images.ToArray<float>();
        var dst = new float[src.Length];
        Parallel.For(0, n, i =>
        {
            int oy = (int)dy[i] - padding, ox = (int)dx[i] - padding;
            bool m = mirror[i] != 0;
            for (int ch = 0; ch < c; ch++)
            {
                int plane = (i * c + ch) * h * w;
                for (int y = 0; y < h; y++)
                {
                    int sy = y + oy;
                    if (sy < 0 || sy >= h) continue; // stays zero: padding
                    for (int x = 0; x < w; x++)
                    {
                        int sx = x + ox;
                        if (sx < 0 || sx >= w) continue;
                        dst[plane + y * w + (m ? w - 1 - x : x)] = src[plane + sy * w + sx];
                    }
                }
            }
        });
        return NdArray.FromArray(dst, images.Shape);
    }
}
