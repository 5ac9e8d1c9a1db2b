using Curvature.Engine;

namespace Curvature.Spectral;

/// <summary>
/// A diagonal block A_bb = P_b·A·P_bᵀ of an operator on the coordinates [offset, offset + size): each product embeds
/// the block's vector in zeros, applies the whole operator and keeps the block's part (one whole product per
/// product). <see cref="HessianOperator.Block"/> is the cheaper form for a Hessian.
/// </summary>
public sealed class BlockOperator : ILinearOperator
{
    private readonly ILinearOperator whole;
    private readonly long offset;

    /// <summary>The block of <paramref name="whole"/> on [<paramref name="offset"/>, <paramref name="offset"/> + <paramref name="size"/>).</summary>
    public BlockOperator(ILinearOperator whole, long offset, long size)
    {
        if (offset < 0 || size < 1 || offset + size > whole.Dimension)
            throw new ArgumentOutOfRangeException(nameof(size), size, $"block [{offset}, {offset + size}) of an operator of dimension {whole.Dimension}.");
        this.whole = whole;
        this.offset = offset;
        Dimension = size;
    }

    /// <inheritdoc/>
    public long Dimension { get; }

    /// <inheritdoc/>
    public DType DType => whole.DType;

    /// <inheritdoc/>
    public Device Device => whole.Device;

    /// <inheritdoc/>
    public NdArray Apply(NdArray v)
    {
        var parts = new List<NdArray>(3);
        if (offset > 0) parts.Add(NdArray.Zeros(new Shape((int)offset), DType, Device));
        parts.Add(v);
        long after = whole.Dimension - offset - Dimension;
        if (after > 0) parts.Add(NdArray.Zeros(new Shape((int)after), DType, Device));
        return whole.Apply(NdArray.Concat(parts.ToArray(), 0)).Rows((int)offset, (int)Dimension).Copy();
    }
}
