using Curvature.Autodiff;
using Curvature.Engine;
using Curvature.Models;

namespace Curvature.Tests.Models;

/// <summary>ResNet-20's names, shapes and counts as MODELS.md gives them, and exact HVPs through BatchNorm in training mode.</summary>
public class ResNetTests
{
    [Theory]
    [InlineData(3, 272_474)]
    [InlineData(1, 272_186)]
    public void Resnet20_has_the_parameter_count_of_models_md(int channels, long expected)
    {
        Assert.Equal(expected, ResNet.ResNet20(new RandomGenerator(0), channels).ParameterCount());
    }

    [Fact]
    public void State_dict_uses_torchvision_names_and_shapes()
    {
        var state = ResNet.ResNet20(new RandomGenerator(0), 3).StateDict().ToDictionary(t => t.Name, t => t.Value);
        Assert.Equal(new Shape(16, 3, 3, 3), state["conv1.weight"].Shape);
        Assert.Equal(DType.Int64, state["bn1.num_batches_tracked"].DType);
        Assert.Equal(Shape.Scalar, state["bn1.num_batches_tracked"].Shape);
        Assert.Equal(new Shape(16, 16, 3, 3), state["layer1.2.conv2.weight"].Shape);
        Assert.Equal(new Shape(32, 16, 3, 3), state["layer2.0.conv1.weight"].Shape);
        Assert.Equal(new Shape(32, 16, 1, 1), state["layer2.0.downsample.0.weight"].Shape);
        Assert.Equal(new Shape(32), state["layer2.0.downsample.1.running_var"].Shape);
        Assert.Equal(new Shape(64, 32, 1, 1), state["layer3.0.downsample.0.weight"].Shape);
        Assert.False(state.ContainsKey("layer1.0.downsample.0.weight"));
        Assert.False(state.ContainsKey("layer2.1.downsample.0.weight"));
        Assert.Equal(new Shape(10, 64), state["fc.weight"].Shape);
        Assert.Equal(new Shape(10), state["fc.bias"].Shape);
        Assert.DoesNotContain(state.Keys, k => k.EndsWith("conv1.bias", StringComparison.Ordinal));
    }

    [Fact]
    public void Forward_on_fashion_mnist_shapes_gives_ten_logits()
    {
        var net = ResNet.ResNet20(new RandomGenerator(0), 1);
        var y = net.Forward(Bindings.Constant(net, training: false), new RandomGenerator(1).Normal(new Shape(2, 1, 28, 28)));
        Assert.Equal(new Shape(2, 10), y.Shape);
    }

    [Fact]
    public void Hvp_of_a_tiny_resnet_in_training_mode_matches_finite_differences_and_is_symmetric()
    {
        var rng = new RandomGenerator(2);
        var net = new ResNet(rng, inputChannels: 2, classes: 3, width: 2, blocksPerStage: 1, dtype: DType.Float64);
        var x = rng.Normal(new Shape(4, 2, 6, 6), dtype: DType.Float64);
        var y = rng.Integers(new Shape(4), 3);
        var f = Loss.Function(net, "ce", x, y, training: true);
        var w = net.Parameters().Select(p => p.Data).ToArray();
        var v = GradCheck.RandomLike(rng, w);
        var u = GradCheck.RandomLike(rng, w);
        Tensor[] T(NdArray[] a) => a.Select(t => (Tensor)t).ToArray();
        var hv = GradCheck.Flatten(Derivatives.Hvp(f, T(w), T(v)).Product).Data;
        var fd = GradCheck.FiniteDifference(p => GradCheck.Flatten(Derivatives.Grad(f, p)), w, v);
        GradCheck.AssertClose(hv, fd, 1e-6, 1e-8, "tiny ResNet HVP (training-mode BatchNorm)");
        var hu = GradCheck.Flatten(Derivatives.Hvp(f, T(w), T(u)).Product).Data;
        var fu = GradCheck.Flatten(T(u)).Data;
        var fv = GradCheck.Flatten(T(v)).Data;
        Assert.Equal(fu.Dot(hv), fv.Dot(hu), 1e-10 * Math.Max(1, Math.Abs(fu.Dot(hv))));
    }
}
