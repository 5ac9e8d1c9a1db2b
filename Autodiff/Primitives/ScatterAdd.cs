using Curvature.Engine;

namespace Curvature.Autodiff.Primitives;

/// <summary>
/// y = zeros[rows, width] with updates[i] added to row indices[i] (the adjoint of <see cref="Gather"/>).
/// Linear in the updates: JVP: ẏ = scatter_add(indices, u̇pdates). VJP: ūpdates = ȳ[indices].
/// </summary>
public sealed class ScatterAdd(int rows) : Primitive
{
    /// <summary>Rows of the result.</summary>
    public int Rows { get; } = rows;
    /// <inheritdoc/>
    public override string Name => "scatter_add";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => NdArray.ScatterAdd(x[0], x[1], Rows);
    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y) =>
        xDot[1] is null ? null : Tensor.ScatterAdd(x[0].Detach(), xDot[1]!, Rows);
    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed) =>
        [null, needed[1] ? yBar.Gather(x[0].Detach()) : null];
}
