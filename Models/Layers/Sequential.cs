using Curvature.Autodiff;

namespace Curvature.Models.Layers;

/// <summary>Modules applied in order, named "0", "1", … as in PyTorch's nn.Sequential.</summary>
public sealed class Sequential : Module
{
    private readonly Module[] layers;

    /// <summary>Chains the given modules.</summary>
    public Sequential(params Module[] layers)
    {
        this.layers = layers;
        for (int i = 0; i < layers.Length; i++) AddModule(i.ToString(System.Globalization.CultureInfo.InvariantCulture), layers[i]);
    }

    /// <summary>The chained modules.</summary>
    public IReadOnlyList<Module> Layers => layers;

    /// <inheritdoc/>
    public override Tensor Forward(Bindings b, Tensor x)
    {
        foreach (var l in layers) x = l.Forward(b, x);
        return x;
    }
}
