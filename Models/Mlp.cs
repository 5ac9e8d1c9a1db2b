using Curvature.Engine;
using Curvature.Models.Layers;

namespace Curvature.Models;

/// <summary>
/// The MLP of <c>interop/MODELS.md</c> (Cohen et al. 2021's fc-tanh): PyTorch's
/// <c>nn.Sequential(nn.Flatten(), nn.Linear(784, w), nn.Tanh(), nn.Linear(w, w), nn.Tanh(), nn.Linear(w, 10))</c>,
/// so its parameters are named <c>1.weight</c>, <c>1.bias</c>, <c>3.weight</c>, … exactly as PyTorch names them.
/// </summary>
public static class Mlp
{
    /// <summary>Builds the network with PyTorch's default initialization from <paramref name="rng"/>.</summary>
    public static Sequential Create(RandomGenerator rng, int width = 200, string activation = "tanh", int inputs = 784, int classes = 10, DType dtype = DType.Float32)
    {
        Module Act() => activation switch
        {
            "tanh" => new Tanh(),
            "relu" => new Relu(),
            _ => throw new ArgumentException($"mlp: activation '{activation}' is not one of tanh, relu."),
        };
        if (width < 1 || inputs < 1 || classes < 1) throw new ArgumentException($"mlp: sizes must be positive (inputs {inputs}, width {width}, classes {classes}).");
        return new Sequential(new Flatten(), new Linear(inputs, width, rng, dtype: dtype), Act(), new Linear(width, width, rng, dtype: dtype), Act(), new Linear(width, classes, rng, dtype: dtype));
    }
}
