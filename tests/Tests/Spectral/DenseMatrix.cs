using Curvature.Engine;
using Curvature.Spectral;

namespace Curvature.Tests.Spectral;

/// <summary>An operator written out as a dense matrix, one product per column (for small operators in tests).</summary>
internal static class DenseMatrix
{
    /// <summary>The n×n matrix whose j-th column is op·eⱼ.</summary>
    public static double[,] Of(ILinearOperator op)
    {
        int n = (int)op.Dimension;
        var m = new double[n, n];
        for (int j = 0; j < n; j++)
        {
            var e = new double[n];
            e[j] = 1;
            var column = op.Apply(NdArray.FromArray(e, new Shape(n)).Cast(op.DType)).ToDoubleArray();
            for (int i = 0; i < n; i++) m[i, j] = column[i];
        }
        return m;
    }
}
