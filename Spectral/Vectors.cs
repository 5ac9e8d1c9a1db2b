using Curvature.Engine;

namespace Curvature.Spectral;

/// <summary>Flat-vector helpers shared by the spectral methods.</summary>
public static class Vectors
{
    /// <summary>The Euclidean norm.</summary>
    public static double Norm(NdArray v) => Math.Sqrt(v.Dot(v));

    /// <summary>v scaled to unit norm.</summary>
    public static NdArray Normalize(NdArray v)
    {
        double n = Norm(v);
        if (!(n > 0) || double.IsInfinity(n)) throw new ArgumentException($"cannot normalize a vector of norm {n}.");
        return v * (1 / n);
    }

    /// <summary>Parameter arrays joined into one flat vector.</summary>
    public static NdArray Flatten(IReadOnlyList<NdArray> parts) =>
        parts.Count == 1 ? parts[0].Reshape(-1) : NdArray.Concat(parts.Select(p => p.Reshape(-1)).ToArray(), 0);

    /// <summary>Views of consecutive pieces of a flat vector in the given shapes (no copy).</summary>
    public static NdArray[] Unflatten(NdArray flat, IReadOnlyList<Shape> shapes)
    {
        var parts = new NdArray[shapes.Count];
        long total = shapes.Sum(s => s.Size);
        if (flat.Rank != 1 || flat.Size != total) throw new ArgumentException($"unflatten: a vector of shape {flat.Shape} cannot fill {shapes.Count} tensors of {total} elements.");
        int at = 0;
        for (int i = 0; i < shapes.Count; i++)
        {
            parts[i] = flat.Rows(at, (int)shapes[i].Size).Reshape(shapes[i]);
            at += (int)shapes[i].Size;
        }
        return parts;
    }
}
