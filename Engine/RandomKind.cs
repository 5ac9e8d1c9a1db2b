namespace Curvature.Engine;

/// <summary>Distributions a device can draw from the counter-based stream.</summary>
public enum RandomKind
{
    /// <summary>Uniform on [0, 1).</summary>
    Uniform,
    /// <summary>Standard normal.</summary>
    Normal,
    /// <summary>±1 with equal probability (Hutchinson probes).</summary>
    Rademacher,
    /// <summary>Integers uniform on [0, high).</summary>
    Integers,
}
