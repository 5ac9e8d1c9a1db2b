using Curvature.Kernels;
using Curvature.Kernels.Cpu;

namespace Curvature.Tests.Kernels;

/// <summary>
/// The normalization kernels against plain per-group loops in float64, on [A, G, B] views that cover every way their
/// statistics pass splits the rows: several image chunks with a short last one, an image larger than a chunk split
/// into blocks of groups, LayerNorm's single image of many groups, and a view that fits one chunk.
/// </summary>
[Collection(ThreadSettings.Name)]
public class NormalizationTests
{
    // (A, G, B): 70 images of 1,000 values are chunks of 33, 33 and 4 images; 3 images of 5 × 10,000 are blocks of 3 and
    // 2 groups; one image of 300 rows of 200 is blocks of 163 and 137 rows; 3 × 4 × 35 is one chunk.
    public static TheoryData<int, int, int> Views => new() { { 70, 4, 250 }, { 3, 5, 10_000 }, { 1, 300, 200 }, { 3, 4, 35 } };

    private static double[] Random(System.Random r, long n, double mean, double scale) =>
        Enumerable.Range(0, (int)n).Select(_ => mean + scale * (r.NextDouble() * 2 - 1)).ToArray();

    private static IEnumerable<long> Group(int a, int g, int b, int gi)
    {
        for (int ai = 0; ai < a; ai++)
            for (int bi = 0; bi < b; bi++) yield return ((long)ai * g + gi) * b + bi;
    }

    /// <summary>Per group: μ, r = 1/√(σ² + ε), mean u, mean(u·x̂), by two passes over the group.</summary>
    private static (double Mean, double R, double MeanU, double MeanUXhat)[] Statistics(double[] x, double[] u, int a, int g, int b, double eps) =>
        Enumerable.Range(0, g).Select(gi =>
        {
            var at = Group(a, g, b, gi).ToArray();
            double mean = at.Average(i => x[i]), variance = at.Average(i => (x[i] - mean) * (x[i] - mean)), r = 1 / Math.Sqrt(variance + eps);
            return (mean, r, at.Average(i => u[i]), at.Average(i => u[i] * (x[i] - mean) * r));
        }).ToArray();

    private static void AssertClose(double[] expected, double[] actual, double tolerance, string what)
    {
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tolerance * (1 + Math.Abs(expected[i])), $"{what}: [{i}] {actual[i]} vs {expected[i]}");
    }

    [Theory]
    [MemberData(nameof(Views))]
    public void Statistics_normalization_and_jacobian_match_per_group_loops(int a, int g, int b)
    {
        const double eps = 1e-5;
        long n = (long)a * g * b;
        var r = new System.Random(a * 31 + g * 7 + b);
        // A mean far from zero and a different offset per image: the chunks' partial moments must merge exactly.
        var x = Random(r, n, 3, 1.5);
        for (long i = 0; i < n; i++) x[i] += 20 * (i / ((long)g * b));
        var u = Random(r, n, 0.5, 1);
        var stats = Statistics(x, u, a, g, b, eps);

        var mean = new double[g];
        var variance = new double[g];
        Normalization.Moments<double>(x, mean, variance, a, g, b);
        AssertClose(stats.Select(s => s.Mean).ToArray(), mean, 1e-13, "mean");
        AssertClose(stats.Select(s => 1 / (s.R * s.R) - eps).ToArray(), variance, 1e-12, "variance");

        var y = new double[n];
        Normalization.Normalize<double>(x, y, a, g, b, eps);
        var expected = new double[n];
        var jacobian = new double[n];
        for (int gi = 0; gi < g; gi++)
            foreach (long i in Group(a, g, b, gi))
            {
                var s = stats[gi];
                double xHat = (x[i] - s.Mean) * s.R;
                expected[i] = xHat;
                jacobian[i] = s.R * (u[i] - s.MeanU - xHat * s.MeanUXhat);
            }
        AssertClose(expected, y, 1e-11, "x̂");

        var ju = new double[n];
        Normalization.Jacobian<double>(x, u, ju, a, g, b, eps);
        AssertClose(jacobian, ju, 1e-11, "J·u");

        var product = new double[g];
        Normalization.GroupMeanProduct<double>(x, u, product, a, g, b);
        AssertClose(Enumerable.Range(0, g).Select(gi => Group(a, g, b, gi).Average(i => x[i] * u[i])).ToArray(), product, 1e-13, "mean x·u");

        var covariance = new double[g];
        Normalization.GroupCovariance<double>(u, x, covariance, a, g, b);
        // Two passes by the definition: mean u·(x − mean x).
        AssertClose(Enumerable.Range(0, g).Select(gi => Group(a, g, b, gi).Average(i => u[i] * (x[i] - stats[gi].Mean))).ToArray(), covariance, 1e-12, "covariance of u and x");
    }

    [Theory]
    [MemberData(nameof(Views))]
    public void Jacobian_tangent_matches_a_central_difference_of_the_jacobian(int a, int g, int b)
    {
        const double eps = 1e-5, h = 1e-5;
        long n = (long)a * g * b;
        var r = new System.Random(a * 17 + g * 5 + b);
        var (x, u, v, w) = (Random(r, n, 2, 1), Random(r, n, 0, 1), Random(r, n, 0, 1), Random(r, n, 0, 1));
        var ju = new double[n];
        Normalization.Jacobian<double>(x, u, ju, a, g, b, eps);
        var tangent = new double[n];
        Normalization.JacobianTangent<double>(x, u, ju, v, w, tangent, a, g, b, eps);
        // d/dt J(x + t·v)·(u + t·w) at t = 0.
        double[] At(double t)
        {
            var result = new double[n];
            Normalization.Jacobian<double>(x.Select((xi, i) => xi + t * v[i]).ToArray(), u.Select((ui, i) => ui + t * w[i]).ToArray(), result, a, g, b, eps);
            return result;
        }
        var (plus, minus) = (At(h), At(-h));
        AssertClose(plus.Select((p, i) => (p - minus[i]) / (2 * h)).ToArray(), tangent, 1e-6, "tangent");
    }

    [Fact]
    public void Results_do_not_depend_on_the_thread_count()
    {
        const int a = 70, g = 4, b = 250;
        var r = new System.Random(5);
        var x = Random(r, a * g * b, 1, 2).Select(v => (float)v).ToArray();
        var u = Random(r, a * g * b, 0, 1).Select(v => (float)v).ToArray();
        float[] Run(int threads)
        {
            int saved = Parallelism.MaxThreads;
            Parallelism.MaxThreads = threads;
            try
            {
                var y = new float[x.Length];
                var ju = new float[x.Length];
                var t = new float[x.Length];
                Normalization.Normalize<float>(x, y, a, g, b, 1e-5);
                Normalization.Jacobian<float>(x, u, ju, a, g, b, 1e-5);
                Normalization.JacobianTangent<float>(x, u, ju, y, ju, t, a, g, b, 1e-5);
                return [.. y, .. ju, .. t];
            }
            finally { Parallelism.MaxThreads = saved; }
        }
        Assert.Equal(Run(1), Run(2));
        Assert.Equal(Run(1), Run(3));
    }
}
