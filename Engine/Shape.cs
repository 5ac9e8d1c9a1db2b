using System.Collections;

namespace Curvature.Engine;

/// <summary>An immutable array shape (row-major), with NumPy broadcasting rules.</summary>
public sealed class Shape : IEquatable<Shape>, IReadOnlyList<int>
{
    private readonly int[] dims;

    /// <summary>Creates a shape from its dimensions; each must be non-negative.</summary>
    public Shape(params int[] dims)
    {
        foreach (var d in dims)
            if (d < 0) throw new ArgumentException($"Shape dimensions must be non-negative, got [{string.Join(", ", dims)}].", nameof(dims));
        this.dims = (int[])dims.Clone();
        long size = 1;
        foreach (var d in dims) size = checked(size * d);
        Size = size;
    }

    /// <summary>The shape of a scalar (rank 0).</summary>
    public static readonly Shape Scalar = new();

    /// <summary>Number of axes.</summary>
    public int Rank => dims.Length;

    /// <summary>Number of elements (the product of the dimensions).</summary>
    public long Size { get; }

    /// <summary>Dimension of an axis; negative axes count from the end.</summary>
    public int this[int axis] => dims[NormalizeAxis(axis)];

    /// <inheritdoc/>
    public int Count => dims.Length;

    /// <summary>A copy of the dimensions.</summary>
    public int[] ToArray() => (int[])dims.Clone();

    /// <summary>Maps a possibly negative axis into [0, Rank), or throws naming the rank.</summary>
    public int NormalizeAxis(int axis)
    {
        int a = axis < 0 ? axis + dims.Length : axis;
        if (a < 0 || a >= dims.Length) throw new ArgumentOutOfRangeException(nameof(axis), axis, $"Axis {axis} is out of range for shape {this} (rank {Rank}).");
        return a;
    }

    /// <summary>Row-major element strides.</summary>
    public int[] Strides()
    {
        var s = new int[dims.Length];
        long acc = 1;
        for (int i = dims.Length - 1; i >= 0; i--) { s[i] = (int)acc; acc *= dims[i]; }
        return s;
    }

    /// <summary>
    /// Strides for reading an array of this shape as if it had shape <paramref name="target"/> (which it
    /// broadcasts to): 0 on broadcast axes.
    /// </summary>
    public int[] BroadcastStrides(Shape target)
    {
        var own = Strides();
        var s = new int[target.Rank];
        int offset = target.Rank - Rank;
        for (int i = 0; i < Rank; i++) s[offset + i] = dims[i] == 1 && target.dims[offset + i] != 1 ? 0 : own[i];
        return s;
    }

    /// <summary>The NumPy broadcast of two shapes, or null when they are incompatible.</summary>
    public static Shape? TryBroadcast(Shape a, Shape b)
    {
        int rank = Math.Max(a.Rank, b.Rank);
        var r = new int[rank];
        for (int i = 0; i < rank; i++)
        {
            int da = i < rank - a.Rank ? 1 : a.dims[i - (rank - a.Rank)];
            int db = i < rank - b.Rank ? 1 : b.dims[i - (rank - b.Rank)];
            if (da != db && da != 1 && db != 1) return null;
            r[i] = da == 1 ? db : da;
        }
        return new Shape(r);
    }

    /// <summary>True when this shape broadcasts to <paramref name="target"/>.</summary>
    public bool BroadcastsTo(Shape target)
    {
        if (Rank > target.Rank) return false;
        int offset = target.Rank - Rank;
        for (int i = 0; i < Rank; i++)
            if (dims[i] != 1 && dims[i] != target.dims[offset + i]) return false;
        return true;
    }

    /// <inheritdoc/>
    public bool Equals(Shape? other) => other is not null && dims.AsSpan().SequenceEqual(other.dims);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is Shape s && Equals(s);

    /// <inheritdoc/>
    public override int GetHashCode()
    {
        var h = new HashCode();
        foreach (var d in dims) h.Add(d);
        return h.ToHashCode();
    }

    /// <summary>Shape equality.</summary>
    public static bool operator ==(Shape? a, Shape? b) => a is null ? b is null : a.Equals(b);

    /// <summary>Shape inequality.</summary>
    public static bool operator !=(Shape? a, Shape? b) => !(a == b);

    /// <summary>Formats as [d0, d1, …].</summary>
    public override string ToString() => "[" + string.Join(", ", dims) + "]";

    /// <inheritdoc/>
    public IEnumerator<int> GetEnumerator() => ((IEnumerable<int>)dims).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => dims.GetEnumerator();

    /// <summary>Implicit conversion from an array of dimensions.</summary>
    public static implicit operator Shape(int[] dims) => new(dims);
}
