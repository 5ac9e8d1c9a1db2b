using Curvature.Engine;

namespace Curvature.Models;

/// <summary>
/// A trainable array owned by a module (PyTorch's <c>param.data</c>; named <c>Data</c> as <see cref="Autodiff.Tensor.Data"/>
/// is). Its array is replaced (not mutated) by optimizers and loaders.
/// </summary>
public sealed class Parameter(NdArray data)
{
    /// <summary>The current array.</summary>
    public NdArray Data { get; set; } = data;

    /// <summary>Shape of the array.</summary>
    public Shape Shape => Data.Shape;
}

/// <summary>A non-trainable array that belongs in the state dict (BatchNorm running statistics, counters).</summary>
public sealed class Buffer(NdArray data)
{
    /// <summary>The current array.</summary>
    public NdArray Data { get; set; } = data;
}
