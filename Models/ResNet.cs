using Curvature.Autodiff;
using Curvature.Engine;
using Curvature.Models.Layers;

namespace Curvature.Models;

/// <summary>
/// ResNet-20 of <c>interop/MODELS.md</c> (He et al. 2016, CIFAR variant, torchvision names): stem
/// relu(bn1(conv1(x))) with a 3×3 convolution to 16 channels; three stages (<c>layer1</c>…<c>layer3</c>) of basic
/// blocks at 16, 32 and 64 channels, the first block of stages 2 and 3 with stride 2 and a projection shortcut
/// (<c>downsample.0</c> a 1×1 convolution, <c>downsample.1</c> BatchNorm); global average pooling; <c>fc</c>.
/// Convolutions have no bias. The base width and the blocks per stage are options (16 and 3 give ResNet-20),
/// so tests can use a tiny network of the same structure.
/// </summary>
public sealed class ResNet : Module
{
    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly Sequential[] stages;
    private readonly Linear fc;

    /// <summary>Builds the network with PyTorch's default initialization drawn from <paramref name="rng"/>.</summary>
    public ResNet(RandomGenerator rng, int inputChannels = 1, int classes = 10, int width = 16, int blocksPerStage = 3, DType dtype = DType.Float32)
    {
        if (inputChannels < 1 || classes < 1 || width < 1 || blocksPerStage < 1)
            throw new ArgumentException($"resnet: input channels {inputChannels}, classes {classes}, width {width}, blocks {blocksPerStage}; expected positive values.");
        conv1 = AddModule("conv1", new Conv2d(inputChannels, width, 3, rng, padding: 1, bias: false, dtype: dtype));
        bn1 = AddModule("bn1", new BatchNorm2d(width, dtype: dtype));
        stages = new Sequential[3];
        int channels = width;
        for (int s = 0; s < 3; s++)
        {
            int outChannels = width << s;
            var blocks = new Module[blocksPerStage];
            for (int b = 0; b < blocksPerStage; b++)
            {
                int stride = s > 0 && b == 0 ? 2 : 1;
                blocks[b] = new BasicBlock(channels, outChannels, stride, rng, dtype);
                channels = outChannels;
            }
            stages[s] = AddModule($"layer{s + 1}", new Sequential(blocks));
        }
        fc = AddModule("fc", new Linear(channels, classes, rng, dtype: dtype));
    }

    /// <summary>The ResNet-20 of MODELS.md for the given input channels (1 for Fashion-MNIST, 3 for CIFAR).</summary>
    public static ResNet ResNet20(RandomGenerator rng, int inputChannels = 1, DType dtype = DType.Float32) => new(rng, inputChannels, dtype: dtype);

    /// <inheritdoc/>
    public override Tensor Forward(Bindings b, Tensor x)
    {
        if (x.Rank != 4) throw new ArgumentException($"resnet: input {x.Shape}; expected [N, C, H, W].");
        var h = bn1.Forward(b, conv1.Forward(b, x), null, relu: true);
        foreach (var stage in stages) h = stage.Forward(b, h);
        return fc.Forward(b, h.Mean([2, 3]));
    }

    /// <summary>out = relu(bn1(conv1(x))); out = bn2(conv2(out)); relu(out + shortcut(x)).</summary>
    private sealed class BasicBlock : Module
    {
        private readonly Conv2d conv1, conv2;
        private readonly BatchNorm2d bn1, bn2;
        private readonly Sequential? downsample;

        public BasicBlock(int inChannels, int outChannels, int stride, RandomGenerator rng, DType dtype)
        {
            conv1 = AddModule("conv1", new Conv2d(inChannels, outChannels, 3, rng, stride, 1, bias: false, dtype: dtype));
            bn1 = AddModule("bn1", new BatchNorm2d(outChannels, dtype: dtype));
            conv2 = AddModule("conv2", new Conv2d(outChannels, outChannels, 3, rng, 1, 1, bias: false, dtype: dtype));
            bn2 = AddModule("bn2", new BatchNorm2d(outChannels, dtype: dtype));
            if (stride != 1 || inChannels != outChannels)
                downsample = AddModule("downsample", new Sequential(new Conv2d(inChannels, outChannels, 1, rng, stride, 0, bias: false, dtype: dtype), new BatchNorm2d(outChannels, dtype: dtype)));
        }

        public override Tensor Forward(Bindings b, Tensor x)
        {
            // BatchNorm, ReLU and the residual add fused where they meet (one pass each instead of two and three).
            var h = bn1.Forward(b, conv1.Forward(b, x), null, relu: true);
            return bn2.Forward(b, conv2.Forward(b, h), downsample?.Forward(b, x) ?? x, relu: true);
        }
    }
}
