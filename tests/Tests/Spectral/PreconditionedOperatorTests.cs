using Curvature.Engine;
using Curvature.Spectral;

namespace Curvature.Tests.Spectral;

/// <summary>P^(−½)AP^(−½) has the eigenvalues of P⁻¹A.</summary>
public class PreconditionedOperatorTests
{
    [Fact]
    public void Its_eigenvalues_are_those_of_the_preconditioned_matrix()
    {
        var rng = new RandomGenerator(3);
        var a = DenseOperator.Planted([5.0, 2.0, 1.0, 0.5, -1.0], rng);
        var p = rng.Uniform(new Shape(5), 0.2, 3, DType.Float64).ToArray<double>();
        var d = NdArray.FromArray(p.Select(x => 1 / Math.Sqrt(x)).ToArray());
        var op = new PreconditionedOperator(a, d);
        var (values, _) = SymmetricEigen.Decompose(DenseMatrix.Of(op));
        // P⁻¹A = D²A is similar to DAD: the same characteristic polynomial, checked through its trace and the dense eigen-solve of DAD.
        var dense = DenseMatrix.Of(a);
        double traceOfPInverseA = Enumerable.Range(0, 5).Sum(i => dense[i, i] / p[i]);
        Assert.Equal(traceOfPInverseA, values.Sum(), 1e-10);
        var top = Lanczos.Run(op, 5, k: 1, rng: new RandomGenerator(4)).Values[0];
        Assert.Equal(values.Max(), top, 1e-9);
        // And each eigenpair of DAD gives one of P⁻¹A: (P⁻¹A)(Dy) = λ(Dy).
        var (vals, vecs) = SymmetricEigen.Decompose(DenseMatrix.Of(op));
        for (int k = 0; k < 5; k++)
        {
            var x = Enumerable.Range(0, 5).Select(i => vecs[i, k] / Math.Sqrt(p[i])).ToArray();
            for (int i = 0; i < 5; i++)
            {
                double ax = Enumerable.Range(0, 5).Sum(j => dense[i, j] * x[j]) / p[i];
                Assert.Equal(vals[k] * x[i], ax, 1e-9);
            }
        }
    }
}
