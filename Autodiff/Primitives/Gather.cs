using Curvature.Engine;

namespace Curvature.Autodiff.Primitives;

/// <summary>
/// y = table[indices] (rows of a [rows, width] table; embeddings). Linear in the table: JVP: ẏ = ṫable[indices].
/// VJP: t̄able = scatter_add(indices, ȳ, rows); the int64 indices get no cotangent.
/// </summary>
public sealed class Gather : Primitive
{
    /// <summary>The op (stateless).</summary>
    public static readonly Gather Instance = new();
    /// <inheritdoc/>
    public override string Name => "gather";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => x[0].Gather(x[1]);
    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y) => xDot[0]?.Gather(x[1].Detach());
    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed) =>
        [needed[0] ? Tensor.ScatterAdd(x[1].Detach(), yBar, x[0].Shape[0]) : null, null];
}
