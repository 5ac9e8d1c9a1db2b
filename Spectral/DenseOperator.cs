using Curvature.Engine;

namespace Curvature.Spectral;

/// <summary>An explicit symmetric n×n matrix as an operator (small problems, planted spectra, tests).</summary>
public sealed class DenseOperator : ILinearOperator
{
    private readonly NdArray matrix;

    /// <summary>Wraps a square matrix; symmetry is the caller's promise.</summary>
    public DenseOperator(NdArray matrix)
    {
        if (matrix.Rank != 2 || matrix.Shape[0] != matrix.Shape[1]) throw new ArgumentException($"dense operator: matrix shape {matrix.Shape}; expected square.");
        this.matrix = matrix;
    }

    /// <summary>Q·diag(λ)·Qᵀ for the given eigenvalues and a Haar-random orthogonal Q (QR of a Gaussian matrix).</summary>
    public static DenseOperator Planted(IReadOnlyList<double> eigenvalues, RandomGenerator rng, DType dtype = DType.Float64)
    {
        int n = eigenvalues.Count;
        var g = rng.Normal(new Shape(n, n), dtype: DType.Float64).ToArray<double>();
        // Modified Gram-Schmidt on the columns of g gives Q.
        var q = new double[n, n];
        for (int j = 0; j < n; j++)
        {
            var v = new double[n];
            for (int i = 0; i < n; i++) v[i] = g[i * n + j];
            for (int pass = 0; pass < 2; pass++)
                for (int k = 0; k < j; k++)
                {
                    double d = 0;
                    for (int i = 0; i < n; i++) d += q[i, k] * v[i];
                    for (int i = 0; i < n; i++) v[i] -= d * q[i, k];
                }
            double norm = Math.Sqrt(v.Sum(x => x * x));
            for (int i = 0; i < n; i++) q[i, j] = v[i] / norm;
        }
        var a = new double[n * n];
        for (int r = 0; r < n; r++)
            for (int c = 0; c < n; c++)
            {
                double s = 0;
                for (int k = 0; k < n; k++) s += q[r, k] * eigenvalues[k] * q[c, k];
                a[r * n + c] = s;
            }
        return new DenseOperator(NdArray.FromArray(a, new Shape(n, n)).Cast(dtype));
    }

    /// <inheritdoc/>
    public long Dimension => matrix.Shape[0];

    /// <inheritdoc/>
    public DType DType => matrix.DType;

    /// <inheritdoc/>
    public Device Device => matrix.Device;

    /// <inheritdoc/>
    public NdArray Apply(NdArray v) => matrix.MatMul(v.Reshape(-1, 1)).Reshape(-1);
}
