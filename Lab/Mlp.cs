using Curvature.Autodiff;
using Curvature.Engine;

namespace Curvature.Lab;

/// <summary>
/// The MLP of <c>interop/MODELS.md</c> (Cohen et al. 2021's fc-tanh): Linear(784, w) → act → Linear(w, w) →
/// act → Linear(w, 10), parameters named as PyTorch's <c>nn.Sequential</c> names them (<c>1.weight</c> [w, 784],
/// …) and initialised as PyTorch does (uniform on ±1/√fan_in). A functional form: the loss is a function of the
/// parameter list, which is what Grad and Hvp differentiate. The Models layer takes this over when it lands.
/// </summary>
public sealed class Mlp
{
    /// <summary>PyTorch state-dict names, in parameter order.</summary>
    public static readonly string[] Names = ["1.weight", "1.bias", "3.weight", "3.bias", "5.weight", "5.bias"];

    /// <summary>An MLP of the given sizes and activation.</summary>
    public Mlp(int inputs = 784, int width = 200, int classes = 10, string activation = "tanh")
    {
        if (activation is not ("tanh" or "relu")) throw new ArgumentException($"mlp: activation '{activation}' is not one of tanh, relu.");
        Inputs = inputs; Width = width; Classes = classes; Activation = activation;
    }

    /// <summary>Input features.</summary>
    public int Inputs { get; }
    /// <summary>Hidden width.</summary>
    public int Width { get; }
    /// <summary>Output classes.</summary>
    public int Classes { get; }
    /// <summary>tanh or relu.</summary>
    public string Activation { get; }

    /// <summary>Parameter shapes in <see cref="Names"/> order.</summary>
    public Shape[] Shapes => [new(Width, Inputs), new(Width), new(Width, Width), new(Width), new(Classes, Width), new(Classes)];

    /// <summary>Number of parameters.</summary>
    public long ParameterCount => Shapes.Sum(s => s.Size);

    /// <summary>PyTorch's default initialisation: weights and biases uniform on ±1/√fan_in.</summary>
    public NdArray[] Initialize(RandomGenerator rng, DType dtype = DType.Float32)
    {
        int[] fanIn = [Inputs, Inputs, Width, Width, Width, Width];
        return Shapes.Select((s, i) => rng.Uniform(s, -1 / Math.Sqrt(fanIn[i]), 1 / Math.Sqrt(fanIn[i]), dtype)).ToArray();
    }

    private Tensor Act(Tensor x) => Activation == "tanh" ? x.Tanh() : x.Relu();

    /// <summary>Logits [N, classes] for inputs [N, inputs].</summary>
    public Tensor Forward(Tensor[] p, Tensor x)
    {
        var h = Act(x.MatMul(p[0], transB: true) + p[1]);
        h = Act(h.MatMul(p[2], transB: true) + p[3]);
        return h.MatMul(p[4], transB: true) + p[5];
    }

    /// <summary>The loss ("mse" or "ce" of MODELS.md) on a batch, as a function of the parameters.</summary>
    public Tensor Loss(Tensor[] p, Tensor x, Tensor labels, string loss) => loss switch
    {
        "mse" => Losses.MeanSquaredError(Forward(p, x), labels),
        "ce" => Losses.CrossEntropy(Forward(p, x), labels),
        _ => throw new ArgumentException($"loss '{loss}' is not one of mse, ce."),
    };
}
