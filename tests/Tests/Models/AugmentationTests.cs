using Curvature.Engine;
using Curvature.Models.Data;

namespace Curvature.Tests.Models;

/// <summary>Random crop with zero padding and horizontal flip: what each does to an image, and that draws are seeded.</summary>
public class AugmentationTests
{
    [Fact]
    public void No_padding_and_no_flip_is_the_identity()
    {
        var x = new RandomGenerator(1).Normal(new Shape(5, 2, 6, 7));
        Assert.Equal(x.ToArray<float>(), Augmentation.CropAndFlip(x, 0, false, new RandomGenerator(2)).ToArray<float>());
    }

    [Fact]
    public void Flipping_alone_mirrors_some_images_and_keeps_the_rest()
    {
        var x = new RandomGenerator(3).Normal(new Shape(64, 1, 4, 5));
        var y = Augmentation.CropAndFlip(x, 0, true, new RandomGenerator(4)).ToArray<float>();
        var xs = x.ToArray<float>();
        int mirrored = 0;
        for (int n = 0; n < 64; n++)
        {
            bool same = true, mirror = true;
            for (int r = 0; r < 4; r++)
                for (int c = 0; c < 5; c++)
                {
                    same &= y[n * 20 + r * 5 + c] == xs[n * 20 + r * 5 + c];
                    mirror &= y[n * 20 + r * 5 + c] == xs[n * 20 + r * 5 + 4 - c];
                }
            Assert.True(same || mirror, $"image {n} is neither itself nor its mirror");
            if (mirror && !same) mirrored++;
        }
        Assert.InRange(mirrored, 16, 48); // about half
    }

    [Fact]
    public void A_crop_moves_a_pixel_by_at_most_the_padding_and_fills_with_zeros()
    {
        // One bright pixel in the middle of a 9×9 image: after a crop with padding 2 it sits within 2 pixels of
        // where it was, every other pixel is zero, and over many draws every offset in [−2, 2]² appears.
        int n = 400;
        var data = new float[n * 81];
        for (int i = 0; i < n; i++) data[i * 81 + 4 * 9 + 4] = 1;
        var y = Augmentation.CropAndFlip(NdArray.FromArray(data, new Shape(n, 1, 9, 9)), 2, false, new RandomGenerator(5)).ToArray<float>();
        var offsets = new HashSet<(int, int)>();
        for (int i = 0; i < n; i++)
        {
            var pixels = Enumerable.Range(0, 81).Where(j => y[i * 81 + j] != 0).ToArray();
            Assert.Single(pixels);
            offsets.Add((pixels[0] / 9 - 4, pixels[0] % 9 - 4));
        }
        Assert.Equal(25, offsets.Count);
        Assert.All(offsets, o => Assert.True(Math.Abs(o.Item1) <= 2 && Math.Abs(o.Item2) <= 2));
    }

    [Fact]
    public void The_same_seed_gives_the_same_augmentation()
    {
        var x = new RandomGenerator(6).Normal(new Shape(8, 1, 10, 10));
        Assert.Equal(Augmentation.CropAndFlip(x, 2, true, new RandomGenerator(7)).ToArray<float>(), Augmentation.CropAndFlip(x, 2, true, new RandomGenerator(7)).ToArray<float>());
        Assert.NotEqual(Augmentation.CropAndFlip(x, 2, true, new RandomGenerator(7)).ToArray<float>(), Augmentation.CropAndFlip(x, 2, true, new RandomGenerator(8)).ToArray<float>());
    }
}
