using Curvature.Engine;
using Curvature.Kernels;
using Curvature.Kernels.Cpu;
using FsCheck;
using FsCheck.Fluent;

namespace Curvature.Tests.Engine;

/// <summary>Broadcasting, reductions, layout ops and their error messages on the CPU device.</summary>
[Collection(ThreadSettings.Name)]
public class NdArrayTests
{
    private static NdArray Seq(params int[] shape)
    {
        var s = new Shape(shape);
        return NdArray.FromArray(Enumerable.Range(0, (int)s.Size).Select(i => (double)i * 0.5 - 3).ToArray(), s);
    }

    private static readonly Gen<int[]> Shapes = Gen.ArrayOf(Gen.Choose(1, 4)).Where(a => a.Length <= 4);

    [Fact]
    public void Broadcast_binary_ops_match_index_arithmetic()
    {
        // Make y's shape from x's by dropping leading axes and setting some to 1.
        var prop = Prop.ForAll(Shapes.ToArbitrary(), Gen.Choose(0, 255).ToArbitrary(), (dims, mask) =>
        {
            var x = Seq(dims);
            int drop = dims.Length == 0 ? 0 : mask % (dims.Length + 1);
            var ydims = dims.Skip(drop).Select((d, i) => ((mask >> (i + 2)) & 1) == 1 ? 1 : d).ToArray();
            var y = Seq(ydims) * 0.25 + 1;
            var z = (x * y).ToArray<double>();
            var xs = x.ToArray<double>(); var ys = y.ToArray<double>();
            var strides = new Shape(dims).Strides();
            var yShape = new Shape(ydims);
            var yStrides = yShape.BroadcastStrides(new Shape(dims));
            for (int i = 0; i < xs.Length; i++)
            {
                int yi = 0, rem = i;
                for (int a = 0; a < dims.Length; a++) { int idx = rem / strides[a]; rem %= strides[a]; yi += idx * yStrides[a]; }
                Assert.Equal(xs[i] * ys[yi], z[i]);
            }
        });
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(100), prop);
    }

    [Fact]
    public void Sum_over_any_axes_equals_the_naive_sum()
    {
        var prop = Prop.ForAll(Shapes.Where(s => s.Length > 0).ToArbitrary(), Gen.Choose(1, 15).ToArbitrary(), (dims, axisMask) =>
        {
            var x = Seq(dims);
            var axes = Enumerable.Range(0, dims.Length).Where(a => ((axisMask >> a) & 1) == 1).ToArray();
            if (axes.Length == 0) axes = [0];
            var sum = x.Sum(axes, keepDims: true);
            var xs = x.ToArray<double>();
            var strides = new Shape(dims).Strides();
            var expected = new double[sum.Size];
            var outStrides = sum.Shape.Strides();
            for (int i = 0; i < xs.Length; i++)
            {
                int o = 0, rem = i;
                for (int a = 0; a < dims.Length; a++) { int idx = rem / strides[a]; rem %= strides[a]; if (!axes.Contains(a)) o += idx * outStrides[a]; }
                expected[o] += xs[i];
            }
            var got = sum.ToArray<double>();
            for (int i = 0; i < got.Length; i++) Assert.Equal(expected[i], got[i], 1e-12);
        });
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(100), prop);
    }

    [Fact]
    public void Permute_then_inverse_permute_is_the_identity()
    {
        var prop = Prop.ForAll(Gen.Choose(1, 4).SelectMany(r => Gen.Shuffle(Enumerable.Range(0, r).ToArray())).ToArbitrary(), perm =>
        {
            var dims = perm.Select(p => p + 2).ToArray();
            var x = Seq(dims);
            var inverse = new int[perm.Length];
            for (int i = 0; i < perm.Length; i++) inverse[perm[i]] = i;
            Assert.Equal(x.ToArray<double>(), x.Permute(perm).Permute(inverse).ToArray<double>());
        });
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(30), prop);
    }

    [Fact]
    public void Transpose_moves_elements()
    {
        var t = Seq(2, 3).Transpose();
        Assert.Equal(new Shape(3, 2), t.Shape);
        Assert.Equal(new double[] { -3, -1.5, -2.5, -1, -2, -0.5 }, t.ToArray<double>());
    }

    [Fact]
    public void Slices_concatenate_back_to_the_whole()
    {
        var x = Seq(3, 5, 2);
        var parts = new[] { x.Slice(1, 0, 2), x.Slice(1, 2, 1), x.Slice(1, 3, 2) };
        Assert.Equal(x.ToArray<double>(), NdArray.Concat(parts, 1).ToArray<double>());
    }

    [Fact]
    public void Scatter_add_is_the_adjoint_of_gather()
    {
        var rng = new RandomGenerator(1);
        var table = rng.Normal(new Shape(6, 4), dtype: DType.Float64);
        var idx = NdArray.FromArray(new long[] { 5, 0, 5, 2, 2, 2 }, new Shape(2, 3));
        var y = rng.Normal(new Shape(2, 3, 4), dtype: DType.Float64);
        // ⟨gather(T, i), y⟩ = ⟨T, scatter_add(i, y)⟩
        Assert.Equal(table.Gather(idx).Dot(y), table.Dot(NdArray.ScatterAdd(idx, y, 6)), 1e-12);
    }

    [Fact]
    public void Reshape_is_a_view_sharing_storage()
    {
        var x = Seq(2, 6);
        var v = x.Reshape(3, -1);
        Assert.Equal(new Shape(3, 4), v.Shape);
        Assert.Same(x.Storage, v.Storage);
        x.Span<double>()[5] = 100;
        Assert.Equal(100, v.ToArray<double>()[5]);
    }

    [Fact]
    public void Log_softmax_rows_exponentiate_to_one_and_cross_entropy_matches_it()
    {
        var rng = new RandomGenerator(2);
        var logits = rng.Normal(new Shape(5, 7), std: 3, dtype: DType.Float64);
        var ls = logits.LogSoftmax();
        var rows = ls.Apply(UnaryOp.Exp).Sum([1]).ToArray<double>();
        Assert.All(rows, s => Assert.Equal(1.0, s, 12));
        var labels = NdArray.FromArray(new long[] { 0, 6, 3, 3, 1 }, new Shape(5));
        double expected = -Enumerable.Range(0, 5).Average(i => ls.ToArray<double>()[i * 7 + (int)labels.ToArray<long>()[i]]);
        Assert.Equal(expected, logits.CrossEntropy(labels).ToScalar(), 1e-12);
    }

    [Fact]
    public void Large_reductions_are_bitwise_identical_on_one_and_two_threads()
    {
        var x = new RandomGenerator(9).Normal(new Shape(3, 100_003));
        float[] Run(int threads)
        {
            int saved = Parallelism.MaxThreads;
            Parallelism.MaxThreads = threads;
            try { return [.. x.Sum().ToArray<float>(), .. x.Sum([0]).ToArray<float>().Take(5), .. x.Sum([1]).ToArray<float>()]; }
            finally { Parallelism.MaxThreads = saved; }
        }
        Assert.Equal(Run(1), Run(2));
    }

    [Fact]
    public void Linear_combination_equals_the_sum_of_scaled_arrays()
    {
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(30), Prop.ForAll(Gen.Choose(1, 6).ToArbitrary(), Gen.Choose(1, 40000).ToArbitrary(), (count, length) =>
        {
            var rng = new RandomGenerator((ulong)(count * 100000 + length));
            var xs = Enumerable.Range(0, count).Select(_ => rng.Normal(new Shape(length), dtype: DType.Float64)).ToArray();
            var c = rng.Normal(new Shape(count), dtype: DType.Float64).ToArray<double>();
            var expected = xs[0] * c[0];
            for (int i = 1; i < count; i++) expected = expected + xs[i] * c[i];
            var got = NdArray.LinearCombination(xs, c).ToArray<double>();
            var want = expected.ToArray<double>();
            for (int i = 0; i < length; i++) Assert.Equal(want[i], got[i], 1e-12);
        }));
    }

    [Fact]
    public void Matmul_mismatch_names_the_op_and_both_shapes()
    {
        var e = Assert.Throws<ArgumentException>(() => Seq(2, 3).MatMul(Seq(4, 5)));
        Assert.Contains("matmul", e.Message);
        Assert.Contains("[2, 3]", e.Message);
        Assert.Contains("[4, 5]", e.Message);
    }

    [Fact]
    public void Dtype_mismatch_names_both_dtypes()
    {
        var e = Assert.Throws<ArgumentException>(() => Seq(2) + NdArray.Ones(new Shape(2)));
        Assert.Contains("add", e.Message);
        Assert.Contains("float64", e.Message);
        Assert.Contains("float32", e.Message);
    }

    [Fact]
    public void Incompatible_broadcast_names_the_shapes()
    {
        var e = Assert.Throws<ArgumentException>(() => Seq(2, 3) * Seq(2));
        Assert.Contains("[2, 3]", e.Message);
        Assert.Contains("[2]", e.Message);
    }

    [Fact]
    public void Out_of_range_label_is_named()
    {
        var e = Assert.ThrowsAny<ArgumentException>(() => Seq(2, 3).CrossEntropy(NdArray.FromArray(new long[] { 0, 3 }, new Shape(2))));
        Assert.Contains("label 3", e.Message);
    }
}

/// <summary>Comparison masks (vectorized) against the scalar definition, with ties, NaN and broadcasting.</summary>
public class ComparisonMaskTests
{
    [Theory]
    [InlineData(Curvature.Kernels.BinaryOp.Greater)]
    [InlineData(Curvature.Kernels.BinaryOp.GreaterEqual)]
    [InlineData(Curvature.Kernels.BinaryOp.Less)]
    [InlineData(Curvature.Kernels.BinaryOp.LessEqual)]
    [InlineData(Curvature.Kernels.BinaryOp.Equal)]
    public void Masks_match_the_scalar_comparison(Curvature.Kernels.BinaryOp op)
    {
        // Values on a coarse grid so ties are common; a NaN; 37 columns so vector tails are exercised.
        var r = new Random(5);
        var xs = Enumerable.Range(0, 3 * 37).Select(_ => (float)r.Next(-3, 4)).ToArray();
        xs[10] = float.NaN;
        var ys = Enumerable.Range(0, 37).Select(_ => (float)r.Next(-3, 4)).ToArray();
        var x = NdArray.FromArray(xs, new Shape(3, 37));
        var y = NdArray.FromArray(ys, new Shape(37));
        bool Cmp(float a, float b) => op switch
        {
            Curvature.Kernels.BinaryOp.Greater => a > b,
            Curvature.Kernels.BinaryOp.GreaterEqual => a >= b,
            Curvature.Kernels.BinaryOp.Less => a < b,
            Curvature.Kernels.BinaryOp.LessEqual => a <= b,
            _ => a == b,
        };
        var full = x.Apply(op, y).ToArray<float>();
        var scalar = x.Apply(op, 0.0).ToArray<float>();
        for (int i = 0; i < xs.Length; i++)
        {
            Assert.Equal(Cmp(xs[i], ys[i % 37]) ? 1f : 0f, full[i]);
            Assert.Equal(Cmp(xs[i], 0f) ? 1f : 0f, scalar[i]);
        }
    }
}

/// <summary>The fused softmax against exp(log-softmax), on rows with large logits.</summary>
public class SoftmaxTests
{
    [Fact]
    public void Softmax_is_exp_of_log_softmax_and_rows_sum_to_one()
    {
        var x = new RandomGenerator(2).Normal(new Shape(7, 33), 0, 30, DType.Float64);
        var p = x.Softmax();
        GradCheck.AssertClose(p, x.LogSoftmax().Apply(Curvature.Kernels.UnaryOp.Exp), 1e-14, 1e-300, "softmax");
        GradCheck.AssertClose(p.Sum([1]), NdArray.Ones(new Shape(7), DType.Float64), 1e-14, 1e-14, "row sums");
    }
}
