using Curvature.Autodiff;
using Curvature.Engine;
using Curvature.Models;
using Curvature.Spectral;
using FsCheck;
using FsCheck.Fluent;

namespace Curvature.Tests.Spectral;

/// <summary>The spectral methods on operators whose spectrum is known.</summary>
public class SpectralTests
{
    private static DenseOperator Diagonal(double[] d) => new(NdArray.FromArray(
        Enumerable.Range(0, d.Length * d.Length).Select(i => i / d.Length == i % d.Length ? d[i / d.Length] : 0.0).ToArray(), new Shape(d.Length, d.Length)));

    /// <summary>A spectrum with a clear top: five separated large eigenvalues over a uniform bulk, one large negative.</summary>
    private static double[] Planted(int n, RandomGenerator rng)
    {
        var bulk = rng.Uniform(new Shape(n - 6), -1, 1, DType.Float64).ToArray<double>();
        return [50, 30, 20, 12, 8, -40, .. bulk];
    }

    [Fact]
    public void Tridiagonal_solver_matches_jacobi_rotations_on_random_matrices()
    {
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(25), Prop.ForAll(Gen.Choose(1, 25).ToArbitrary(), Gen.Choose(0, 10000).ToArbitrary(), (n, seed) =>
        {
            var rng = new RandomGenerator((ulong)seed);
            var d = rng.Normal(new Shape(n), dtype: DType.Float64).ToArray<double>();
            var e = rng.Normal(new Shape(Math.Max(n - 1, 0)), dtype: DType.Float64).ToArray<double>();
            if (n == 1) e = [];
            var dense = new double[n, n];
            for (int i = 0; i < n; i++) { dense[i, i] = d[i]; if (i + 1 < n) { dense[i, i + 1] = e[i]; dense[i + 1, i] = e[i]; } }
            var (values, vectors) = SymmetricTridiagonal.Decompose(d, e);
            var (expected, _) = DenseMatrix.JacobiEigen(dense);
            for (int i = 0; i < n; i++) Assert.Equal(expected[i], values[i], 1e-10);
            // T s = λ s for every column.
            for (int j = 0; j < n; j++)
                for (int i = 0; i < n; i++)
                {
                    double ts = 0;
                    for (int k = 0; k < n; k++) ts += dense[i, k] * vectors[k, j];
                    Assert.Equal(values[j] * vectors[i, j], ts, 1e-9);
                }
        }));
    }

    /// <summary>
    /// The dense solver on random symmetric matrices: general ones, ones with planted repeated eigenvalues, and
    /// rank-deficient B·Bᵀ (K-FAC's factors are such Gram matrices). Its eigenvalues agree with Jacobi rotations,
    /// ascend, and V·diag(λ)·Vᵀ = M, VᵀV = I to 1e-12·‖M‖.
    /// </summary>
    [Fact]
    public void Dense_solver_reconstructs_random_symmetric_matrices()
    {
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(60), Prop.ForAll(Gen.Choose(1, 60).ToArbitrary(), Gen.Choose(0, 4).ToArbitrary(), Gen.Choose(0, 10000).ToArbitrary(), (n, kind, seed) =>
        {
            var rng = new RandomGenerator((ulong)seed);
            var m = new double[n, n];
            double[]? planted = null;
            if (kind == 0)
            {
                var x = rng.Normal(new Shape(n, n), dtype: DType.Float64).ToArray<double>();
                for (int i = 0; i < n; i++)
                    for (int j = 0; j < n; j++) m[i, j] = x[i * n + j] + x[j * n + i];
            }
            else if (kind == 1)
            {
                // Q·diag(λ)·Qᵀ with λ drawn from {−2, 0, 1, 3}: every value repeated when n > 4.
                var pick = new Random(seed);
                planted = Enumerable.Range(0, n).Select(_ => new double[] { -2, 0, 1, 3 }[pick.Next(4)]).ToArray();
                var dense = DenseMatrix.Of(DenseOperator.Planted(planted, rng));
                for (int i = 0; i < n; i++)
                    for (int j = 0; j < n; j++) m[i, j] = (dense[i, j] + dense[j, i]) / 2;
                Array.Sort(planted);
            }
            else
            {
                // Gram matrices; kind 3 as a K-FAC input factor of images: exact zero rows (border pixels), float32 entries;
                // kind 4 as an output-gradient factor of saturated tanh units: zero rows and rows 1e-15 of the others (entries near 1e-31).
                int rank = Math.Max(1, n / 3);
                var b = rng.Normal(new Shape(n, rank), dtype: DType.Float64).ToArray<double>();
                if (kind == 3)
                    for (int t = 0; t < b.Length; t++) b[t] = (t / rank) % 3 == 0 ? 0 : (float)b[t];
                if (kind == 4)
                    for (int t = 0; t < b.Length; t++) b[t] *= (t / rank) % 3 == 0 ? 0 : (t / rank) % 3 == 1 ? 1e-15 : 0.1;
                for (int i = 0; i < n; i++)
                    for (int j = 0; j < n; j++)
                        for (int r = 0; r < rank; r++) m[i, j] += b[i * rank + r] * b[j * rank + r];
                if (kind == 3)
                    for (int i = 0; i < n; i++)
                        for (int j = 0; j < n; j++) m[i, j] = (float)m[i, j];
            }
            double norm = Math.Sqrt(Enumerable.Range(0, n * n).Sum(t => m[t / n, t % n] * m[t / n, t % n]));
            double tol = 1e-12 * Math.Max(norm, 1) * n;
            var (values, vectors) = SymmetricEigen.Decompose(m);
            var (reference, _) = DenseMatrix.JacobiEigen(m);
            for (int i = 0; i < n; i++) Assert.Equal(reference[i], values[i], tol);
            for (int i = 1; i < n; i++) Assert.True(values[i] >= values[i - 1], $"eigenvalues not ascending at {i}: {values[i - 1]} then {values[i]}");
            if (planted is not null)
                for (int i = 0; i < n; i++) Assert.Equal(planted[i], values[i], 1e-10);
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++)
                {
                    double vtv = 0, vlv = 0;
                    for (int k = 0; k < n; k++) { vtv += vectors[k, i] * vectors[k, j]; vlv += vectors[i, k] * values[k] * vectors[j, k]; }
                    Assert.Equal(i == j ? 1.0 : 0.0, vtv, 1e-12 * n);
                    Assert.Equal(m[i, j], vlv, tol);
                }
        }));
    }

    /// <summary>
    /// A recorded tridiagonal (Householder's reduction of a 200×200 K-FAC output-gradient factor of an MLP whose tanh
    /// units saturated at a too-large rate): entries grade from 1e-43 up to 0.04, so √(a² + b²) by squares underflowed
    /// and the QL iteration stalled. It converges, with eigenpairs of residual ≤ 1e-15·‖T‖.
    /// </summary>
    [Fact]
    public void Tridiagonal_solver_converges_on_a_recorded_graded_matrix()
    {
        using var stream = typeof(SpectralTests).Assembly.GetManifestResourceStream("saturated_factor_tridiagonal.txt")!;
        var rows = new StreamReader(stream).ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(' ').Select(t => double.Parse(t, System.Globalization.CultureInfo.InvariantCulture)).ToArray()).ToArray();
        int n = rows.Length;
        var d = rows.Select(r => r[0]).ToArray();
        var e = rows.Take(n - 1).Select(r => r[1]).ToArray();
        var (values, vectors) = SymmetricTridiagonal.Decompose(d, e);
        double norm = Enumerable.Range(0, n).Max(i => Math.Abs(d[i]) + (i > 0 ? Math.Abs(e[i - 1]) : 0) + (i < n - 1 ? Math.Abs(e[i]) : 0));
        Assert.True(norm > 0.01);
        for (int j = 0; j < n; j++)
            for (int i = 0; i < n; i++)
            {
                double ts = d[i] * vectors[i, j] + (i > 0 ? e[i - 1] * vectors[i - 1, j] : 0) + (i < n - 1 ? e[i] * vectors[i + 1, j] : 0);
                Assert.True(Math.Abs(ts - values[j] * vectors[i, j]) <= 1e-15 * norm, $"residual {Math.Abs(ts - values[j] * vectors[i, j]):E2} at ({i}, {j})");
            }
    }

    /// <summary>The NdArray overload returns the same decomposition, in the matrix's dtype, vectors as columns.</summary>
    [Fact]
    public void Dense_solver_on_arrays_keeps_the_dtype_and_returns_columns()
    {
        var rng = new RandomGenerator(3);
        var x = rng.Normal(new Shape(7, 7), dtype: DType.Float64);
        var m = x + x.Transpose();
        var (values, vectors) = SymmetricEigen.Decompose(m.Cast(DType.Float32));
        Assert.Equal(DType.Float32, values.DType);
        Assert.Equal(DType.Float32, vectors.DType);
        var mv = m.Cast(DType.Float32).MatMul(vectors).ToDoubleArray();
        var v = vectors.ToDoubleArray();
        var l = values.ToDoubleArray();
        for (int i = 0; i < 7; i++)
            for (int j = 0; j < 7; j++) Assert.Equal(l[j] * v[i * 7 + j], mv[i * 7 + j], 1e-4);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Lanczos_finds_the_top_eigenvalues_of_a_planted_spectrum(bool conjugated)
    {
        var rng = new RandomGenerator(1);
        var lambda = Planted(150, rng);
        ILinearOperator op = conjugated ? DenseOperator.Planted(lambda, rng) : Diagonal(lambda);
        var r = Lanczos.Run(op, iterations: 60, k: 5, which: Which.LargestAlgebraic, vectors: true, rng: rng);
        Assert.Equal(new double[] { 50, 30, 20, 12, 8 }, r.Values.Select(v => Math.Round(v, 8)).ToArray());
        for (int i = 0; i < 5; i++)
        {
            Assert.True(r.Residuals[i] < 1e-6, $"residual {r.Residuals[i]:E2} of θ = {r.Values[i]}");
            var v = r.Vectors![i];
            double actual = Vectors.Norm(op.Apply(v) - v * r.Values[i]);
            Assert.True(actual < 1e-6, $"‖Av − θv‖ = {actual:E2} for θ = {r.Values[i]}");
        }
        var byMagnitude = Lanczos.Run(op, iterations: 60, k: 3, which: Which.LargestMagnitude, rng: rng);
        Assert.Equal(new double[] { 50, -40, 30 }, byMagnitude.Values.Select(v => Math.Round(v, 8)).ToArray());
    }

    [Fact]
    public void Lanczos_stops_early_at_the_tolerance_and_on_an_invariant_subspace()
    {
        var rng = new RandomGenerator(2);
        var op = DenseOperator.Planted(Planted(120, rng), rng);
        var r = Lanczos.Run(op, iterations: 120, k: 1, tolerance: 1e-8, rng: rng);
        Assert.True(r.Iterations < 60, $"took {r.Iterations} iterations");
        Assert.Equal(50, r.Values[0], 1e-6);
        // A spectrum of three distinct values makes a 3-dimensional Krylov space.
        var three = Diagonal(Enumerable.Range(0, 30).Select(i => (double)(i % 3)).ToArray());
        Assert.Equal(3, Lanczos.Run(three, iterations: 30, k: 1, rng: rng).Iterations);
    }

    [Fact]
    public void Full_lanczos_recovers_the_whole_spectrum_without_spurious_copies()
    {
        var rng = new RandomGenerator(3);
        var lambda = Enumerable.Range(0, 40).Select(i => Math.Pow(1.3, i) - 5).ToArray();
        var op = DenseOperator.Planted(lambda, rng);
        var r = Lanczos.Run(op, iterations: 40, k: 40, rng: rng);
        var expected = lambda.OrderDescending().ToArray();
        for (int i = 0; i < 40; i++) Assert.Equal(expected[i], r.Values[i], 1e-6);
    }

    [Fact]
    public void Power_iteration_with_deflation_and_warm_start()
    {
        var rng = new RandomGenerator(4);
        var op = DenseOperator.Planted(Planted(80, rng), rng);
        var top = PowerIteration.Top(op, 2, maxIterations: 500, tolerance: 1e-12, rng: rng);
        Assert.Equal(50, top[0].Value, 1e-6);
        Assert.Equal(-40, top[1].Value, 1e-6);
        var warm = PowerIteration.Run(op, maxIterations: 500, tolerance: 1e-9, start: top[0].Vector);
        Assert.True(warm.Iterations <= 3, $"warm start took {warm.Iterations} iterations");
        Assert.Equal(50, warm.Value, 1e-6);
    }

    [Fact]
    public void Hutchinson_trace_is_exact_on_a_diagonal_and_within_its_error_on_a_conjugation()
    {
        var rng = new RandomGenerator(5);
        var lambda = Planted(100, rng);
        var exact = Hutchinson.Trace(Diagonal(lambda), 7, rng);
        Assert.Equal(lambda.Sum(), exact.Value, 1e-9);       // zᵀDz = Σ dᵢ for z ∈ {±1}ⁿ
        Assert.Equal(0, exact.StandardError, 1e-9);
        var op = DenseOperator.Planted(lambda, rng);
        var est = Hutchinson.Trace(op, 200, rng);
        Assert.True(est.StandardError > 0);
        Assert.True(Math.Abs(est.Value - lambda.Sum()) < 4 * est.StandardError, $"trace {est.Value} ± {est.StandardError} vs {lambda.Sum()}");
        var (diag, stderr) = Hutchinson.Diagonal(Diagonal(lambda), 3, rng);
        var estimated = diag.ToArray<double>();
        for (int i = 0; i < lambda.Length; i++) Assert.Equal(lambda[i], estimated[i], 1e-9);
        Assert.All(stderr.ToArray<double>(), s => Assert.Equal(0, s, 9));
    }

    [Fact]
    public void Slq_density_integrates_to_one_and_matches_the_dense_histogram()
    {
        var rng = new RandomGenerator(6);
        int n = 300;
        var lambda = rng.Uniform(new Shape(n), 0, 1, DType.Float64).ToArray<double>().Select(x => x * x * 10).ToArray();
        var op = DenseOperator.Planted(lambda, rng);
        var density = StochasticLanczosQuadrature.Run(op, iterations: 40, probes: 20, rng: rng, gridPoints: 400, sigma: 0.2);
        Assert.Equal(1.0, density.Integral(), 1e-2);
        Assert.Equal(1.0, density.Weights.Sum(), 1e-9);
        // Mass in five bins against the fraction of true eigenvalues there.
        double[] edges = [-1, 2, 4, 6, 8, 11];
        for (int b = 0; b < 5; b++)
        {
            double mass = 0;
            for (int i = 1; i < density.Grid.Length; i++)
            {
                double t = 0.5 * (density.Grid[i] + density.Grid[i - 1]);
                if (t >= edges[b] && t < edges[b + 1]) mass += 0.5 * (density.Density[i] + density.Density[i - 1]) * (density.Grid[i] - density.Grid[i - 1]);
            }
            double fraction = lambda.Count(x => x >= edges[b] && x < edges[b + 1]) / (double)n;
            Assert.True(Math.Abs(mass - fraction) < 0.06, $"bin [{edges[b]}, {edges[b + 1]}): density mass {mass:F3}, dense fraction {fraction:F3}");
        }
    }

    private static (HessianOperator Op, Func<Tensor[], Tensor> F, NdArray[] W) TinyMlp(int chunks)
    {
        var rng = new RandomGenerator(7);
        var model = Mlp.Create(rng, 3, "tanh", 4, 3, DType.Float64);
        var w = model.Parameters().Select(p => p.Data * 2.0).ToArray();
        var x = rng.Normal(new Shape(12, 4), dtype: DType.Float64);
        var y = rng.Integers(new Shape(12), 3);
        var full = Loss.Function(model, "ce", x, y);
        int size = 12 / chunks;
        var terms = Enumerable.Range(0, chunks)
            .Select(c => (Loss.Function(model, "ce", x.Rows(c * size, size), y.Rows(c * size, size)), 1.0 / chunks)).ToArray();
        return (new HessianOperator(terms, w), full, w);
    }

    [Fact]
    public void Lanczos_on_an_mlp_hessian_matches_the_dense_hessian()
    {
        var (op, _, _) = TinyMlp(1);
        int n = (int)op.Dimension;
        var (dense, _) = SymmetricEigen.Decompose(DenseMatrix.Of(op));
        var r = Lanczos.Run(op, iterations: n, k: 3, rng: new RandomGenerator(8));
        var expected = dense.OrderDescending().Take(3).ToArray();
        for (int i = 0; i < 3; i++) Assert.Equal(expected[i], r.Values[i], 1e-8);
    }

    [Fact]
    public void Chunked_hessian_operator_equals_the_full_batch_one()
    {
        var (chunked, f, w) = TinyMlp(3);
        var full = new HessianOperator(f, w);
        var v = new RandomGenerator(9).Normal(new Shape((int)full.Dimension), dtype: DType.Float64);
        GradCheck.AssertClose(chunked.Apply(v), full.Apply(v), 1e-12, 1e-14, "chunked vs full-batch Hv");
        var (l1, g1) = chunked.LossAndGradient();
        var (l2, g2) = full.LossAndGradient();
        Assert.Equal(l2, l1, 1e-12);
        GradCheck.AssertClose(g1, g2, 1e-12, 1e-14, "chunked vs full-batch gradient");
    }
}
