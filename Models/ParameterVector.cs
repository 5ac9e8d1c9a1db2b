using Curvature.Engine;

namespace Curvature.Models;

/// <summary>
/// A model's parameters (or gradients, or a direction) as one vector: a list of arrays, one per parameter, in
/// <see cref="Module.Parameters"/> order. The inner product, norm and axpy are those of the concatenated vector, so a
/// gradient's norm, a direction's step or a cosine between two gradients need no flattening.
/// </summary>
public static class ParameterVector
{
    /// <summary>The parameter values of <paramref name="model"/> (no copy: the arrays themselves).</summary>
    public static NdArray[] Of(Module model) => model.Parameters().Select(p => p.Data).ToArray();

    /// <summary>⟨x, y⟩ = Σᵢ xᵢ·yᵢ over every element of every array (float64 accumulation).</summary>
    public static double Dot(IReadOnlyList<NdArray> x, IReadOnlyList<NdArray> y)
    {
        Check(x, y);
        double s = 0;
        for (int i = 0; i < x.Count; i++) s += x[i].Dot(y[i]);
        return s;
    }

    /// <summary>‖x‖₂ of the concatenated vector.</summary>
    public static double Norm(IReadOnlyList<NdArray> x) => Math.Sqrt(Dot(x, x));

    /// <summary>α·x + y, array by array (new arrays; x and y are unchanged).</summary>
    public static NdArray[] Axpy(double alpha, IReadOnlyList<NdArray> x, IReadOnlyList<NdArray> y)
    {
        Check(x, y);
        return x.Select((xi, i) => xi * alpha + y[i]).ToArray();
    }

    /// <summary>α·x, array by array.</summary>
    public static NdArray[] Scale(double alpha, IReadOnlyList<NdArray> x) => x.Select(xi => xi * alpha).ToArray();

    private static void Check(IReadOnlyList<NdArray> x, IReadOnlyList<NdArray> y)
    {
        if (x.Count != y.Count) throw new ArgumentException($"parameter vectors of {x.Count} and {y.Count} arrays.");
        for (int i = 0; i < x.Count; i++)
            if (x[i].Shape != y[i].Shape) throw new ArgumentException($"parameter vectors differ at array {i}: {x[i].Shape} and {y[i].Shape}.");
    }
}
