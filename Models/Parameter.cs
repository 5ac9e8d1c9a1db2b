using Curvature.Engine;

namespace Curvature.Models;

/// <summary>A trainable array owned by a module. Its value is replaced (not mutated) by optimizers and loaders.</summary>
public sealed class Parameter(NdArray value)
{
    /// <summary>The current value.</summary>
    public NdArray Value { get; set; } = value;

    /// <summary>Shape of the value.</summary>
    public Shape Shape => Value.Shape;
}

/// <summary>A non-trainable array that belongs in the state dict (BatchNorm running statistics, counters).</summary>
public sealed class Buffer(NdArray value)
{
    /// <summary>The current value.</summary>
    public NdArray Value { get; set; } = value;
}
