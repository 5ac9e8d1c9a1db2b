using Curvature.Engine;
using Curvature.Kernels;
using Curvature.Kernels.Cpu;
using Curvature.Models;
using Curvature.Spectral;
using ILGPU.Runtime.CPU;

namespace Curvature.Tests.Engine;

/// <summary>
/// The device conformance suite, written once: every op on an accelerator device against the CPU device on the
/// same inputs. It runs on ILGPU's CPU accelerator always (so CI checks the GPU kernels without a GPU) and on
/// CUDA and OpenCL devices when a driver offers one; the <see cref="CudaFactAttribute"/> and
/// <see cref="OpenClFactAttribute"/> tests report themselves skipped where none is present.
/// Tolerances: float64 agrees to 1e-12 relative (different summation orders). float32 results are held to the
/// float64 truth computed from the same inputs: the device's error may be 2e-5 relative to the result's scale
/// (1e-4 where a GEMM sums hundreds of products or erf runs through float64 on the device and Eigen's rational
/// form on the CPU) plus twice the CPU's own error at that element, so a device that computes more
/// accurately than the CPU (float64 accumulation where the CPU cancels in float32) passes.
/// </summary>
[Collection("ilgpu cpu accelerator")] // CpuAccelerator.Name
public class DeviceConformanceTests
{
    public static TheoryData<string> Devices()
    {
        var d = new TheoryData<string> { "ilgpu-cpu" };
        foreach (var (name, _) in DeviceCatalog.Accelerators())
            if (name is "cuda:0" or "opencl:0") d.Add(name);
        return d;
    }

    private static readonly DType[] Floats = [DType.Float32, DType.Float64];

    private static double Rtol(DType t, bool loose = false) => t == DType.Float64 ? 1e-12 : loose ? 1e-4 : 2e-5;

    /// <summary>op on the CPU and on the device (inputs copied there), compared element by element.</summary>
    private static void Same(Device device, Func<NdArray[], NdArray> op, NdArray[] inputs, double rtol, string what, double atol = 0)
    {
        var expected = op(inputs);
        var actual = op(inputs.Select(x => x.To(device)).ToArray());
        Assert.Equal(device, actual.Device);
        Assert.Equal(expected.DType, actual.DType);
        atol = atol == 0 ? rtol * 1e-3 : atol;
        if (expected.DType != DType.Float32)
        {
            GradCheck.AssertClose(actual.To(CpuDevice.Instance), expected, rtol, atol, $"{what} on {device.Name}");
            return;
        }
        var truth = op(inputs.Select(x => x.DType == DType.Float32 ? x.Cast(DType.Float64) : x).ToArray()).ToDoubleArray();
        double[] a = actual.ToDoubleArray(), e = expected.ToDoubleArray();
        Assert.Equal(expected.Shape, actual.Shape);
        double scale = truth.Length == 0 ? 0 : truth.Max(Math.Abs);
        for (int i = 0; i < a.Length; i++)
        {
            double allowed = atol + rtol * Math.Max(scale, Math.Abs(truth[i])) + 2 * Math.Abs(e[i] - truth[i]);
            double err = Math.Abs(a[i] - truth[i]);
            if (!(err <= allowed) && !(a[i] == e[i]))
                Assert.Fail($"{what} on {device.Name}: element {i} is {a[i]:R}, the CPU gives {e[i]:R}, float64 gives {truth[i]:R} (error {err:E2}, allowed {allowed:E2}).");
        }
    }

    private static NdArray Normal(RandomGenerator rng, DType t, params int[] shape) => rng.Normal(new Shape(shape), dtype: t);

    [Theory, MemberData(nameof(Devices))]
    public void Transfers_fill_and_casts_round_trip_every_dtype(string name)
    {
        var d = DeviceCatalog.Resolve(name);
        var f = new float[] { 1.5f, -2.25f, 3e-8f, 7 };
        var l = new long[] { -3, 0, 1L << 40, 9 };
        Assert.Equal(f, NdArray.FromArray(f, new Shape(2, 2), d).ToArray<float>());
        Assert.Equal(l, NdArray.FromArray(l, new Shape(4), d).ToArray<long>());
        Assert.Equal(new[] { 2.5, 2.5, 2.5 }, NdArray.Full(new Shape(3), 2.5, DType.Float64, d).ToArray<double>());
        Assert.Equal(new long[] { 7, 7 }, NdArray.Full(new Shape(2), 7, DType.Int64, d).ToArray<long>());
        var x = NdArray.FromArray(new[] { -2.75, 0.5, 3.25, 1e10 }, new Shape(4), d);
        Assert.Equal(new long[] { -2, 0, 3, 10_000_000_000 }, x.Cast(DType.Int64).ToArray<long>());
        Assert.Equal(new float[] { -2.75f, 0.5f, 3.25f, 1e10f }, x.Cast(DType.Float32).ToArray<float>());
        Assert.Equal(new double[] { -3, 0, 1L << 40, 9 }, NdArray.FromArray(l, new Shape(4), d).Cast(DType.Float64).ToArray<double>());
        Assert.Empty(NdArray.Zeros(new Shape(0, 3), DType.Float32, d).ToArray<float>());
    }

    [Theory, MemberData(nameof(Devices))]
    public void Copies_to_and_from_the_device_survive_collections_on_another_thread(string name)
    {
        // A copy hands ILGPU a pointer into a managed array; unless the array is pinned, a collection during the copy
        // moves it and the copy reads or writes its old place (a corrupted input, or a result of zeros). The arrays
        // (84 KB) stay in the heap that collections compact; the other thread compacts it every millisecond or so.
        // Unpinned, 5 to 21 of 3,000 round trips came back changed (in under a second).
        var d = DeviceCatalog.Resolve(name);
        var source = Enumerable.Range(0, 21_000).Select(i => (float)(i % 1000 + 1)).ToArray();
        bool done = false;
        var collector = new Thread(() =>
        {
            while (!Volatile.Read(ref done))
            {
                GC.Collect(0, GCCollectionMode.Forced, blocking: true, compacting: true);
                Thread.Sleep(1);
            }
        });
        collector.Start();
        int wrong = 0, rounds = 0;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            for (; rounds < 3000 && clock.Elapsed.TotalSeconds < 20; rounds++)
            {
                var back = NdArray.FromArray((float[])source.Clone(), new Shape(source.Length), d).ToArray<float>();
                if (!back.AsSpan().SequenceEqual(source)) wrong++;
            }
        }
        finally
        {
            Volatile.Write(ref done, true);
            collector.Join();
        }
        Assert.True(wrong == 0, $"{wrong} of {rounds} round trips came back changed");
    }

    [Theory, MemberData(nameof(Devices))]
    public void Unary_ops_agree_with_the_cpu(string name)
    {
        var d = DeviceCatalog.Resolve(name);
        var rng = new RandomGenerator(1);
        foreach (var t in Floats)
            foreach (var op in Enum.GetValues<UnaryOp>())
            {
                var x = Normal(rng, t, 5, 7) * 2;
                if (op is UnaryOp.Log or UnaryOp.Sqrt) x = x.Apply(UnaryOp.Abs) + 0.1;
                bool loose = op is UnaryOp.Erf or UnaryOp.Gelu or UnaryOp.GeluDerivative or UnaryOp.GeluSecondDerivative or UnaryOp.Tanh;
                Same(d, a => a[0].Apply(op), [x], Rtol(t, loose), $"{op} {t}", t == DType.Float32 ? 1e-6 : 1e-14);
            }
    }

    [Theory, MemberData(nameof(Devices))]
    public void Binary_ops_and_where_broadcast_as_on_the_cpu(string name)
    {
        var d = DeviceCatalog.Resolve(name);
        var rng = new RandomGenerator(2);
        foreach (var t in Floats)
        {
            foreach (var op in Enum.GetValues<BinaryOp>())
            {
                var x = Normal(rng, t, 3, 1, 5);
                var y = Normal(rng, t, 4, 1);
                if (op == BinaryOp.Pow) { x = x.Apply(UnaryOp.Abs) + 0.5; }
                if (op == BinaryOp.Equal) y = x.Slice(2, 0, 1).Reshape(3, 1, 1);
                Same(d, a => a[0].Apply(op, a[1]), [x, y], Rtol(t), $"{op} {t}");
            }
            Same(d, a => a[0] * 3.5 - 1, [Normal(rng, t, 6)], Rtol(t), "scalar operands");
            // Every op with a scalar operand (one launch on an accelerator), against the same op with a one-element array;
            // 0.1 is not a float32, so both must round it to the array's dtype first.
            var z = NdArray.FromArray(new double[] { -2, -0.5, 0, 0.1, 0.5, 1.5, 3, double.NaN, double.PositiveInfinity }, new Shape(3, 3)).Cast(t);
            foreach (var op in Enum.GetValues<BinaryOp>())
                foreach (double c in new[] { 0.1, -1.5, 0, 2, double.NaN })
                {
                    var viaArray = z.Apply(op, NdArray.Scalar(c, t));
                    var onDevice = z.To(d).Apply(op, c);
                    Assert.Equal(d, onDevice.Device);
                    double[] want = viaArray.ToDoubleArray(), got = onDevice.ToDoubleArray();
                    // pow is ScalarMath's on the device and the runtime's on the CPU: a few ulp apart.
                    double tolerance = op == BinaryOp.Pow ? (t == DType.Float64 ? 1e-15 : 3e-7) : 0;
                    for (int i = 0; i < want.Length; i++)
                        Assert.True(want[i].Equals(got[i]) || Math.Abs(got[i] - want[i]) <= tolerance * Math.Abs(want[i]),
                            $"{op}(x, {c}) {t.Name()} on {d.Name}: element {i} is {got[i]:R}, expected {want[i]:R}");
                }
            var cond = Normal(rng, t, 4, 1).Apply(BinaryOp.Greater, NdArray.Scalar(0, t));
            Same(d, a => NdArray.Where(a[0], a[1], a[2]), [cond, Normal(rng, t, 2, 1, 3), NdArray.Scalar(-1e9, t)], Rtol(t), "where");
            Same(d, a => a[0].BroadcastTo(new Shape(2, 4, 3)), [Normal(rng, t, 4, 1)], Rtol(t), "broadcast_to");
        }
    }

    [Theory, MemberData(nameof(Devices))]
    public void Reductions_dot_and_linear_combinations_agree(string name)
    {
        var d = DeviceCatalog.Resolve(name);
        var rng = new RandomGenerator(3);
        foreach (var t in Floats)
        {
            var x = Normal(rng, t, 3, 4, 5);
            foreach (var axes in new[] { new[] { 0 }, [1], [2], [0, 1], [1, 2], [0, 2], [0, 1, 2] })
            {
                Same(d, a => a[0].Sum(axes), [x], Rtol(t), $"sum over {string.Join(",", axes)}");
                Same(d, a => a[0].Max(axes), [x], Rtol(t), $"max over {string.Join(",", axes)}");
            }
            // Long reductions take the group-per-output path.
            var tall = Normal(rng, t, 3, 1000);
            Same(d, a => a[0].Sum([1]), [tall], Rtol(t, true), "long sum");
            Same(d, a => a[0].Max([1]), [tall], Rtol(t), "long max");
            Same(d, a => a[0].Sum(), [Normal(rng, t, 2500)], Rtol(t, true), "sum of all");
            var u = Normal(rng, t, 777);
            var v = Normal(rng, t, 777);
            Assert.Equal(u.Dot(v), u.To(d).Dot(v.To(d)), t == DType.Float64 ? 1e-11 : 1e-4);
            // One to nine terms: one launch of up to four, then launches that add to it.
            for (int terms = 1; terms <= 9; terms++)
            {
                var xs = Enumerable.Range(0, terms).Select(_ => Normal(rng, t, 3, 9)).ToArray();
                var coefficients = Enumerable.Range(0, terms).Select(i => (i % 2 == 0 ? 1 : -1) * (0.5 + i)).ToArray();
                Same(d, a => NdArray.LinearCombination(a, coefficients), xs, Rtol(t), $"linear combination of {terms}");
            }
        }
    }

    [Theory, MemberData(nameof(Devices))]
    public void Matrix_products_agree_for_every_transpose_and_batch(string name)
    {
        var d = DeviceCatalog.Resolve(name);
        var rng = new RandomGenerator(4);
        foreach (var t in Floats)
            foreach (var (ta, tb) in new[] { (false, false), (true, false), (false, true), (true, true) })
            foreach (var (m, n, k) in new[] { (19, 21, 37), (70, 45, 37) })
            {
                // Sizes that are not multiples of any tile, so the edges are exercised; K is not a multiple of the
                // slice depth. A device takes its small GEMM tiling for a product of one large block (the first)
                // and its large tiling for several (the second, and the batched products).
                var a = Normal(rng, t, ta ? [k, m] : [m, k]);
                var b = Normal(rng, t, tb ? [n, k] : [k, n]);
                Same(d, x => x[0].MatMul(x[1], ta, tb), [a, b], Rtol(t, true), $"matmul {ta},{tb} {t}");
                var ab = Normal(rng, t, ta ? [3, k, 5] : [3, 5, k]);
                var bb = Normal(rng, t, tb ? [3, 6, k] : [3, k, 6]);
                Same(d, x => x[0].MatMul(x[1], ta, tb), [ab, bb], Rtol(t, true), $"batched matmul {ta},{tb} {t}");
                // The pair form (a JVP's two terms): the sum of the two products, on this device and against the CPU.
                foreach (var (p, q) in new[] { (a, b), (ab, bb) })
                {
                    var (p2, q2) = (Normal(rng, t, p.Shape.ToArray()), Normal(rng, t, q.Shape.ToArray()));
                    Same(d, x => x[0].MatMulSum(x[1], x[2], x[3], ta, tb), [p, q, p2, q2], Rtol(t, true), $"matmul pair {ta},{tb} {t} {p.Shape}");
                    var onDevice = p.To(d).MatMulSum(q.To(d), p2.To(d), q2.To(d), ta, tb).To(CpuDevice.Instance).Cast(DType.Float64);
                    var twoProducts = (p.MatMul(q, ta, tb) + p2.MatMul(q2, ta, tb)).Cast(DType.Float64);
                    GradCheck.AssertClose(onDevice, twoProducts, Rtol(t, true), Rtol(t, true), $"matmul pair = two products {ta},{tb} {t} on {d.Name}");
                }
            }
    }

    [Theory, MemberData(nameof(Devices))]
    public void Layout_ops_agree(string name)
    {
        var d = DeviceCatalog.Resolve(name);
        var rng = new RandomGenerator(5);
        foreach (var t in Floats)
        {
            var x = Normal(rng, t, 2, 3, 4, 5);
            Same(d, a => a[0].Permute(3, 1, 0, 2), [x], 0, "permute");
            Same(d, a => a[0].Transpose(), [Normal(rng, t, 7, 3)], 0, "transpose");
            Same(d, a => a[0].Slice(2, 1, 2), [x], 0, "slice");
            Same(d, a => NdArray.Concat([a[0], a[1]], 1), [x, Normal(rng, t, 2, 2, 4, 5)], 0, "concat");
            var table = Normal(rng, t, 6, 4);
            var idx = NdArray.FromArray(new long[] { 5, 0, 2, 2, 1, 5 }, new Shape(2, 3));
            Same(d, a => a[0].Gather(a[1]), [table, idx], 0, "gather");
            Same(d, a => NdArray.ScatterAdd(a[0], a[1], 6), [idx, Normal(rng, t, 2, 3, 4)], Rtol(t), "scatter_add");
            var img = Normal(rng, t, 2, 3, 5, 6);
            Same(d, a => a[0].Im2Col(3, 3, 2, 1), [img], 0, "im2col");
            Same(d, a => a[0].Col2Im(3, 5, 6, 3, 3, 2, 1), [Normal(rng, t, 27, 2 * 3 * 3)], Rtol(t), "col2im");
        }
        var ints = NdArray.FromArray(Enumerable.Range(0, 24).Select(i => (long)i).ToArray(), new Shape(2, 3, 4));
        Assert.Equal(ints.Permute(2, 0, 1).ToArray<long>(), ints.To(d).Permute(2, 0, 1).ToArray<long>());
    }

    [Theory, MemberData(nameof(Devices))]
    public void Convolutions_and_their_adjoints_agree(string name)
    {
        var d = DeviceCatalog.Resolve(name);
        var rng = new RandomGenerator(6);
        foreach (var t in Floats)
            foreach (var (stride, padding) in new[] { (1, 1), (2, 1), (1, 0) })
            {
                var x = Normal(rng, t, 2, 3, 7, 6);
                var w = Normal(rng, t, 4, 3, 3, 3);
                var g = x.ConvolutionWith(w.Shape, stride, padding);
                var gy = Normal(rng, t, g.N, g.O, g.OH, g.OW);
                Same(d, a => a[0].Conv2d(a[1], stride, padding), [x, w], Rtol(t, true), $"conv2d s{stride} p{padding}");
                Same(d, a => a[0].Conv2dInputGradient(a[1], g), [gy, w], Rtol(t, true), $"conv2d input gradient s{stride} p{padding}");
                // Pairs: the sum of two members, accumulated in the kernel, against the two computed apart (on the CPU).
                var (x2, w2, gy2) = (Normal(rng, t, 2, 3, 7, 6), Normal(rng, t, 4, 3, 3, 3), Normal(rng, t, g.N, g.O, g.OH, g.OW));
                Same(d, a => a[0].Conv2dSum(a[1], a[2], a[3], g), [x, w, x2, w2], Rtol(t, true), $"conv2d pair s{stride} p{padding}");
                Same(d, a => a[0].Conv2dInputGradientSum(a[1], a[2], a[3], g), [gy, w, gy2, w2], Rtol(t, true), $"conv2d input gradient pair s{stride} p{padding}");
                GradCheck.AssertClose(x.Conv2dSum(w, x2, w2, g).Cast(DType.Float64), (x.Conv2d(w, stride, padding) + x2.Conv2d(w2, stride, padding)).Cast(DType.Float64),
                    Rtol(t, true), Rtol(t, true), $"conv2d pair = sum s{stride} p{padding}");
                GradCheck.AssertClose(gy.Conv2dInputGradientSum(w, gy2, w2, g).Cast(DType.Float64), (gy.Conv2dInputGradient(w, g) + gy2.Conv2dInputGradient(w2, g)).Cast(DType.Float64),
                    Rtol(t, true), Rtol(t, true), $"conv2d input gradient pair = sum s{stride} p{padding}");
                Same(d, a => a[0].Conv2dWeightGradient(a[1], g), [x, gy], Rtol(t, true), $"conv2d weight gradient s{stride} p{padding}");
            }
    }

    // An ILGPU CPU accelerator with four multiprocessors: thin products with a long K leave three of them idle, so
    // the device splits K (the path a weight gradient takes on a GPU), which the one-multiprocessor ilgpu-cpu never does.
    private static readonly Lazy<AcceleratorDevice> FourMultiprocessors = new(() => new AcceleratorDevice(
        new CPUDevice(4, 4, 4).CreateCPUAccelerator(
            ILGPU.Context.Create(b => DeviceCatalog.Compiler(b.CPU())), CPUAcceleratorMode.Parallel), "ilgpu-cpu×4"));

    [Fact]
    public void Products_with_k_split_over_the_multiprocessors_agree()
    {
        var d = FourMultiprocessors.Value;
        var rng = new RandomGenerator(13);
        foreach (var t in Floats)
        {
            // 10×12 from K = 1000: one block, K cut into three ranges; then a second product added to it.
            var (a, b, a2, b2) = (Normal(rng, t, 1000, 10), Normal(rng, t, 1000, 12), Normal(rng, t, 1000, 10), Normal(rng, t, 1000, 12));
            Same(d, x => x[0].MatMul(x[1], transA: true), [a, b], Rtol(t, true), "split-K matmul");
            Same(d, x => x[0].MatMulSum(x[1], x[2], x[3], transA: true), [a, b, a2, b2], Rtol(t, true), "split-K matmul pair");
            // A convolution's weight gradient: 4×27 from K = 4·16·16 = 1024, cut into four ranges.
            var x = Normal(rng, t, 4, 3, 16, 16);
            var g = x.ConvolutionWith(new Shape(4, 3, 3, 3), 1, 1);
            var gy = Normal(rng, t, g.N, g.O, g.OH, g.OW);
            Same(d, v => v[0].Conv2dWeightGradient(v[1], g), [x, gy], Rtol(t, true), "split-K conv2d weight gradient");
        }
    }

    [Fact]
    public void A_scalar_operand_and_four_terms_of_a_combination_take_one_launch()
    {
        var d = FourMultiprocessors.Value; // this class's own device: no other test launches on it meanwhile
        var x = NdArray.FromArray(new float[] { 1, 2, 3 }, new Shape(3), d);
        long Launches(Func<NdArray> op)
        {
            long before = d.KernelLaunches;
            GC.KeepAlive(op());
            return d.KernelLaunches - before;
        }
        Assert.Equal(1, Launches(() => x * 0.5f));
        Assert.Equal(1, Launches(() => NdArray.LinearCombination([x, x, x, x], [1, 2, 3, 4])));
        Assert.Equal(3, Launches(() => NdArray.LinearCombination(Enumerable.Repeat(x, 9).ToArray(), Enumerable.Repeat(1.0, 9).ToArray())));
        Assert.Equal([45f, 90, 135], NdArray.LinearCombination(Enumerable.Repeat(x, 9).ToArray(), Enumerable.Range(1, 9).Select(i => (double)i).ToArray()).ToArray<float>());
    }

    [Theory, MemberData(nameof(Devices))]
    public void Normalization_ops_agree(string name)
    {
        var d = DeviceCatalog.Resolve(name);
        var rng = new RandomGenerator(7);
        foreach (var t in Floats)
        {
            // [4, 3, 5, 2] is one statistics block per group; [8, 3, 32, 32] is four (GPU statistics split a group into
            // blocks of whole images, merged per group).
            foreach (var (s, e, dims) in new[] { (1, 2, new[] { 4, 3, 5, 2 }), (0, 3, new[] { 4, 3, 5, 2 }), (1, 2, new[] { 8, 3, 32, 32 }) })
            {
                var x = Normal(rng, t, dims) * 3 + 1;
                var u = Normal(rng, t, dims);
                Same(d, a => a[0].Normalize(s, e, 1e-5), [x], Rtol(t, true), $"normalize [{s},{e})");
                Same(d, a => a[0].NormalizeJacobian(a[1], s, e, 1e-5), [x, u], Rtol(t, true), $"normalize jacobian [{s},{e})");
                var (ju, v, w) = (Normal(rng, t, dims), Normal(rng, t, dims), Normal(rng, t, dims));
                Same(d, a => a[0].NormalizeJacobianTangent(a[1], a[2], a[3], a[4], s, e, 1e-5), [x, u, ju, v, w], Rtol(t, true), $"normalize jacobian tangent [{s},{e})");
                Same(d, a => a[0].NormalizeJacobianTangent(a[1], a[2], a[3], null, s, e, 1e-5), [x, u, ju, v], Rtol(t, true), $"normalize jacobian tangent, w = 0 [{s},{e})");
                Same(d, a => a[0].GroupMeanProduct(a[1], s, e), [x, u], Rtol(t, true), $"group mean product [{s},{e})");
                Same(d, a => a[0].GroupCovariance(a[1], s, e), [u, x], Rtol(t, true), $"group covariance [{s},{e})");
                Same(d, a => a[0].GroupRstd(s, e, 1e-5), [x], Rtol(t, true), $"group rstd [{s},{e})");
                Same(d, a => a[0].GroupMoments(s, e).Variance, [x], Rtol(t, true), $"group variance [{s},{e})");
                Same(d, a => a[0].NormalizeWithMoments(s, e, 1e-5).Normalized, [x], Rtol(t, true), $"normalize with moments [{s},{e})");
                Same(d, a => a[0].NormalizeWithMoments(s, e, 1e-5).Mean, [x], Rtol(t, true), $"normalize's mean [{s},{e})");
                Same(d, a => a[0].NormalizeWithMoments(s, e, 1e-5).Variance, [x], Rtol(t, true), $"normalize's variance [{s},{e})");
                int groups = (int)x.GroupShape(s, e).Size;
                var (gamma, beta) = (Normal(rng, t, groups), Normal(rng, t, groups));
                Same(d, a => a[0].ScaleShiftCoefficients(a[1], a[2], a[0].GroupMoments(s, e).Mean, a[0].GroupMoments(s, e).Variance, s, e, 1e-5), [x, gamma, beta], Rtol(t, true), $"scale_shift coefficients [{s},{e})");
                Same(d, a => a[0].ScaleShiftBackward(a[1], a[2], a[0].GroupMoments(s, e).Mean, a[0].GroupMoments(s, e).Variance, s, e, 1e-5), [x, u, gamma], Rtol(t, true), $"scale_shift backward [{s},{e})");
                var (gammaDot, betaDot) = (Normal(rng, t, groups), Normal(rng, t, groups));
                Same(d, a => a[0].ScaleShiftTangent(a[1], a[2], a[3], a[4], a[5], a[0].GroupMoments(s, e).Mean, a[0].GroupMoments(s, e).Variance, s, e, 1e-5),
                    [x, v, gamma, beta, gammaDot, betaDot], Rtol(t, true), $"scale_shift tangent [{s},{e})");
                Same(d, a => a[0].ScaleShiftTangent(null, a[1], a[2], a[3], null, a[0].GroupMoments(s, e).Mean, a[0].GroupMoments(s, e).Variance, s, e, 1e-5),
                    [x, gamma, beta, gammaDot], Rtol(t, true), $"scale_shift tangent, ẋ = β̇ = 0 [{s},{e})");
                Same(d, a => a[0].ScaleShiftBackwardTangent(a[1], a[2], a[3], a[4], a[5], a[0].GroupMoments(s, e).Mean, a[0].GroupMoments(s, e).Variance, s, e, 1e-5),
                    [x, u, gamma, v, gammaDot, w], Rtol(t, true), $"scale_shift backward tangent [{s},{e})");
                Same(d, a => a[0].ScaleShiftBackwardTangent(a[1], a[2], null, a[3], null, a[0].GroupMoments(s, e).Mean, a[0].GroupMoments(s, e).Variance, s, e, 1e-5),
                    [x, u, gamma, gammaDot], Rtol(t, true), $"scale_shift backward tangent, ẋ = u̇ = 0 [{s},{e})");
            }
            {
                var x = Normal(rng, t, 4, 3, 5, 2) * 3 + 1;
                var u = Normal(rng, t, 4, 3, 5, 2);
                Same(d, a => a[0].ScaleShift(a[1], a[2], 1, 2), [x, Normal(rng, t, 3), Normal(rng, t, 3)], Rtol(t), "scale_shift");
                Same(d, a => a[0].ScaleShift(a[1], a[2], a[3], a[4], 1, 2), [x, Normal(rng, t, 3), Normal(rng, t, 3), u, Normal(rng, t, 3)], Rtol(t), "scale_shift pair");
                Same(d, a => a[0].ScaleShift(a[1], a[2], 1, 2, a[3], relu: true), [x, Normal(rng, t, 3), Normal(rng, t, 3), u], Rtol(t), "scale_shift + addend, relu");
                Same(d, a => a[0].ScaleShift(a[1], a[2], 1, 2, relu: true), [x, Normal(rng, t, 3), Normal(rng, t, 3)], Rtol(t), "scale_shift, relu");
                Same(d, a => a[0].ScaleShift(a[1], a[2], a[3], a[4], 1, 2, a[5]), [x, Normal(rng, t, 3), Normal(rng, t, 3), u, Normal(rng, t, 3), Normal(rng, t, 4, 3, 5, 2)], Rtol(t), "scale_shift pair + addend");
                var (runningMean, runningVariance) = (Normal(rng, t, 3), Normal(rng, t, 3) * 0.1 + 1);
                var (batchMean, batchVariance) = x.Cast(DType.Float64).GroupMoments(1, 2);
                var counter = NdArray.FromArray(new long[] { 41 }, Shape.Scalar);
                Same(d, a => a[0].UpdateRunningStatistics(a[1], a[2], a[3], a[4], 0.1, 40 / 39.0).Mean, [runningMean, runningVariance, counter, batchMean, batchVariance], Rtol(t), "running mean");
                Same(d, a => a[0].UpdateRunningStatistics(a[1], a[2], a[3], a[4], 0.1, 40 / 39.0).Variance, [runningMean, runningVariance, counter, batchMean, batchVariance], Rtol(t), "running variance");
                Assert.Equal(42L, runningMean.To(d).UpdateRunningStatistics(runningVariance.To(d), counter.To(d), batchMean.To(d), batchVariance.To(d), 0.1, 40 / 39.0).Batches.ToArray<long>()[0]);
            }
        }
    }

    [Theory, MemberData(nameof(Devices))]
    public void Optimizer_updates_agree(string name)
    {
        var d = DeviceCatalog.Resolve(name);
        var rng = new RandomGenerator(14);
        foreach (var t in Floats)
        {
            var (w, g, m) = (Normal(rng, t, 37, 5), Normal(rng, t, 37, 5), Normal(rng, t, 37, 5));
            var v = Normal(rng, t, 37, 5).Apply(UnaryOp.Abs);
            foreach (var step in new[]
            {
                new AdamStep { Beta1 = 0.9, Beta2 = 0.999, Epsilon = 1e-8, L2 = 0.1, Correction1 = 1 / (1 - 0.9 * 0.9), Correction2 = 1 / (1 - 0.999 * 0.999), Keep = 1, LearningRate = 0.01, Apply = 1 },
                new AdamStep { Beta1 = 0.8, Beta2 = 0.99, Epsilon = 1e-6, Correction1 = 5, Correction2 = 100, Keep = 0.999, LearningRate = 0.1, Apply = 1 },
                new AdamStep { Beta1 = 0.9, Beta2 = 0.999, Epsilon = 1e-8, Correction1 = 10, Correction2 = 1000, Keep = 1, LearningRate = 0.01, Apply = 0 },
            })
            {
                Same(d, x => Curvature.Optimizers.FusedUpdates.Adam(x[0], x[1], x[2], x[3], step).M, [w, g, m, v], Rtol(t), $"adam m' {t}");
                Same(d, x => Curvature.Optimizers.FusedUpdates.Adam(x[0], x[1], x[2], x[3], step).V, [w, g, m, v], Rtol(t), $"adam v' {t}");
                Same(d, x => Curvature.Optimizers.FusedUpdates.Adam(x[0], x[1], x[2], x[3], step).Result, [w, g, m, v], Rtol(t), $"adam result (apply {step.Apply}) {t}");
            }
            foreach (var step in new[] { new MomentumStep { Momentum = 0.9, L2 = 0.01, LearningRate = 0.1 }, new MomentumStep { Momentum = 0.5, LearningRate = 0.3, Nesterov = 1 } })
            {
                Same(d, x => Curvature.Optimizers.FusedUpdates.Momentum(x[0], x[1], x[2], step).Buffer, [w, g, m], Rtol(t), $"momentum buffer {t}");
                Same(d, x => Curvature.Optimizers.FusedUpdates.Momentum(x[0], x[1], x[2], step).Weights, [w, g, m], Rtol(t), $"momentum weights (nesterov {step.Nesterov}) {t}");
            }
        }
    }

    [Theory, MemberData(nameof(Devices))]
    public void Softmax_family_and_cross_entropy_agree(string name)
    {
        var d = DeviceCatalog.Resolve(name);
        var rng = new RandomGenerator(8);
        foreach (var t in Floats)
        {
            var x = Normal(rng, t, 6, 11) * 4;
            Same(d, a => a[0].Softmax(), [x], Rtol(t, true), "softmax");
            Same(d, a => a[0].LogSoftmax(), [x], Rtol(t, true), "log_softmax");
            Same(d, a => a[0].Softmax().SoftmaxJacobian(a[1]), [x, Normal(rng, t, 6, 11)], Rtol(t, true), "softmax jacobian");
            var labels = rng.Integers(new Shape(6), 11);
            Same(d, a => a[0].CrossEntropy(a[1]), [x, labels], Rtol(t, true), "cross-entropy");
            Same(d, a => a[0].CrossEntropyGradient(a[1]), [x, labels], Rtol(t, true), "cross-entropy gradient");
            Same(d, a => SoftmaxLossOps.OneHot(a[0], 11, t), [labels], 0, "one_hot");
        }
    }

    [Theory, MemberData(nameof(Devices))]
    public void Random_draws_are_the_cpu_stream(string name)
    {
        var d = DeviceCatalog.Resolve(name);
        foreach (var t in Floats)
        {
            Assert.Equal(new RandomGenerator(9).Uniform(new Shape(1001), dtype: t).ToDoubleArray(), new RandomGenerator(9).Uniform(new Shape(1001), dtype: t, device: d).ToDoubleArray());
            Assert.Equal(new RandomGenerator(9).Rademacher(new Shape(333), t).ToDoubleArray(), new RandomGenerator(9).Rademacher(new Shape(333), t, d).ToDoubleArray());
            GradCheck.AssertClose(new RandomGenerator(9).Normal(new Shape(1001), dtype: t, device: d).To(CpuDevice.Instance),
                new RandomGenerator(9).Normal(new Shape(1001), dtype: t), t == DType.Float64 ? 1e-13 : 1e-6, 1e-7, "normal draws");
        }
        Assert.Equal(new RandomGenerator(9).Integers(new Shape(257), 1000).ToArray<long>(), new RandomGenerator(9).Integers(new Shape(257), 1000, d).ToArray<long>());
    }

    [Theory, MemberData(nameof(Devices))]
    public void The_mlp_hessian_vector_product_on_the_device_equals_the_cpus(string name)
    {
        var rng = new RandomGenerator(10);
        SameCurvature(DeviceCatalog.Resolve(name), () => Mlp.Create(new RandomGenerator(10), width: 8, inputs: 12, classes: 4, dtype: DType.Float64),
            rng.Normal(new Shape(6, 12), dtype: DType.Float64), rng.Integers(new Shape(6), 4), training: false, 1e-11);
    }

    /// <summary>Gradient and HVP of a model on the device against the CPU's (the model is copied, then moved).</summary>
    private static void SameCurvature(Device d, Func<Module> build, NdArray x, NdArray y, bool training, double rtol)
    {
        var rng = new RandomGenerator(11);
        var model = build();
        var v = rng.Normal(new Shape((int)model.ParameterCount()), dtype: DType.Float64);
        var cpu = new HessianOperator(Loss.Function(model, "ce", x, y, training), model.Parameters().Select(p => p.Data).ToArray());
        var hvCpu = cpu.Apply(v);
        var (lossCpu, gradCpu) = cpu.LossAndGradient();
        model.To(d);
        Assert.All(model.Parameters(), p => Assert.Equal(d, p.Data.Device));
        var dev = new HessianOperator(Loss.Function(model, "ce", x.To(d), y.To(d), training), model.Parameters().Select(p => p.Data).ToArray());
        var hvDev = dev.Apply(v.To(d));
        var (lossDev, gradDev) = dev.LossAndGradient();
        Assert.Equal(d, hvDev.Device);
        Assert.Equal(lossCpu, lossDev, 1e-12);
        GradCheck.AssertClose(gradDev.To(CpuDevice.Instance), gradCpu, rtol, 1e-14, "gradient");
        GradCheck.AssertClose(hvDev.To(CpuDevice.Instance), hvCpu, rtol, 1e-14, "HVP");
    }

    [Theory, MemberData(nameof(Devices))]
    public void A_small_resnets_hvp_through_training_mode_batchnorm_equals_the_cpus(string name)
    {
        var d = DeviceCatalog.Resolve(name);
        var rng = new RandomGenerator(12);
        SameCurvature(d, () => new ResNet(new RandomGenerator(1), inputChannels: 2, classes: 3, width: 2, blocksPerStage: 1, dtype: DType.Float64),
            rng.Normal(new Shape(3, 2, 8, 8), dtype: DType.Float64), rng.Integers(new Shape(3), 3), training: true, 1e-10);
    }

    [Theory, MemberData(nameof(Devices))]
    public void A_small_gpts_hvp_through_attention_equals_the_cpus(string name)
    {
        var d = DeviceCatalog.Resolve(name);
        var config = new GptConfig(Vocabulary: 7, Context: 5, Layers: 1, Heads: 2, Width: 4);
        var ids = NdArray.FromArray(new long[] { 1, 4, 2, 6, 0, 3, 3, 5 }, new Shape(2, 4));
        var next = NdArray.FromArray(new long[] { 4, 2, 6, 0, 3, 3, 5, 1 }, new Shape(2, 4));
        SameCurvature(d, () => new Gpt(config, new RandomGenerator(2), DType.Float64), ids, next, training: false, 1e-10);
    }

    [Fact]
    public void The_memory_pool_reuses_the_buffers_of_unreachable_arrays()
    {
        var d = DeviceCatalog.IlgpuCpu;
        static void Churn(Device d) { for (int i = 0; i < 20; i++) _ = NdArray.Full(new Shape(12345), i, DType.Float32, d); }
        Churn(d);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        long reusedBefore = d.Pool.Reused, allocatedBefore = d.Pool.Allocated;
        Churn(d);
        Assert.True(d.Pool.Reused - reusedBefore >= 1, $"no buffer was reused ({d.Pool.Reused - reusedBefore} reused, {d.Pool.Allocated - allocatedBefore} new)");
        Assert.Equal(DeviceMemoryPool.SizeClass(12345 * 4), DeviceMemoryPool.SizeClass(12345 * 4 - 100));
        Assert.True(DeviceMemoryPool.SizeClass(12345 * 4) >= 12345 * 4);
    }

    [Fact]
    public void A_device_shared_by_threads_gives_each_its_own_results()
    {
        // One thread runs kernels on temporaries that become unreachable while the next kernel reads them; the
        // others copy arrays of the same size in from the host and collect garbage, so a temporary's buffer comes
        // back to the pool mid-kernel. Unless the device serializes its ops, another thread rents that buffer and
        // overwrites it before the kernel has read it (wrong values in CI when two test classes shared the device).
        var d = DeviceCatalog.IlgpuCpu;
        const int length = 1 << 14;
        var x = new RandomGenerator(40).Normal(new Shape(length), dtype: DType.Float64);
        // Optimized at once: unoptimized code keeps temporaries alive to the end of the method, which hides the race.
        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
        static NdArray Work(NdArray x)
        {
            var t = x * 2.0;
            for (int i = 0; i < 6; i++) t = t.Apply(UnaryOp.Gelu); // slow kernels: long windows
            return t;
        }
        var xd = x.To(d);
        double[] expected = Work(xd).ToArray<double>(), filler = Enumerable.Repeat(1e6, length).ToArray();
        const int rounds = 24;
        int wrong = 0;
        bool done = false;
        // Threads of their own: the pool's workers are busy with other tests on a 2-core machine.
        var helpers = new[]
        {
            new Thread(() =>
            {
                // Takes every buffer that comes back (and keeps it, so the pool's idle buffers are the worker's).
                var kept = new List<NdArray>();
                while (!Volatile.Read(ref done))
                    if (d.Pool.BytesCached > 0) kept.Add(NdArray.FromArray(filler, new Shape(length), d));
                    else Thread.Yield();
            }),
            new Thread(() =>
            {
                while (!Volatile.Read(ref done)) { GC.Collect(); GC.WaitForPendingFinalizers(); Thread.Sleep(1); }
            }),
        };
        foreach (var h in helpers) h.Start();
        try
        {
            for (int r = 0; r < rounds; r++)
                if (!Work(xd).ToArray<double>().AsSpan().SequenceEqual(expected)) wrong++;
        }
        finally
        {
            Volatile.Write(ref done, true);
            foreach (var h in helpers) h.Join();
        }
        Assert.True(wrong == 0, $"{wrong} of {rounds} rounds gave wrong values");
    }

    [Fact]
    public void Out_of_device_memory_names_the_array_and_suggests_a_way_out()
    {
        var e = Assert.Throws<DeviceMemoryException>(() => NdArray.Zeros(new Shape(1 << 30, 1 << 12), DType.Float32, DeviceCatalog.IlgpuCpu));
        Assert.Contains("ilgpu-cpu", e.Message);
        Assert.Contains("float32 array of 4,398,046,511,104 elements", e.Message);
        Assert.Contains("smaller --batch, or --device cpu", e.Message);
        // The device still works afterwards.
        Assert.Equal(new float[] { 2, 2 }, NdArray.Full(new Shape(2), 2, DType.Float32, DeviceCatalog.IlgpuCpu).ToArray<float>());
    }

    [Fact]
    public void Devices_that_are_absent_or_unknown_are_named_with_what_was_found()
    {
        var unknown = Assert.Throws<ArgumentException>(() => DeviceCatalog.Resolve("tpu"));
        Assert.Contains("'tpu'", unknown.Message);
        Assert.Contains("auto, cpu, cuda", unknown.Message);
        Assert.Contains("Devices found: cpu", unknown.Message);
        if (!DeviceCatalog.Accelerators().Any(a => a.Name.StartsWith("cuda", StringComparison.Ordinal)))
        {
            var cuda = Assert.Throws<ArgumentException>(() => DeviceCatalog.Resolve("cuda"));
            Assert.Contains("'cuda:0' is not present", cuda.Message);
            Assert.Contains("ilgpu-cpu", cuda.Message);
            Assert.Same(CpuDevice.Instance, DeviceCatalog.Resolve("auto", out var choice));
            Assert.Contains("auto chose cpu (no CUDA device found", choice);
        }
        Assert.Throws<ArgumentException>(() => DeviceCatalog.Resolve("cuda:x"));
    }

    [Fact]
    public void Operands_on_different_devices_are_refused_by_name()
    {
        var a = NdArray.Ones(new Shape(3));
        var b = NdArray.Ones(new Shape(3), device: DeviceCatalog.IlgpuCpu);
        var e = Assert.Throws<ArgumentException>(() => a + b);
        Assert.Contains("different devices", e.Message);
        Assert.Contains("ilgpu-cpu", e.Message);
    }

    [Fact]
    public void The_checks_the_gpu_harness_runs_are_every_device_theory_and_fail_with_their_own_error()
    {
        var theories = typeof(DeviceConformanceTests).GetMethods().Where(m => m.GetCustomAttributes(typeof(TheoryAttribute), false).Length > 0).Select(m => m.Name);
        var checks = Checks();
        Assert.Equal(theories.Order(), checks.Select(c => c.Name).Order());
        Assert.Contains(checks, c => c.Name == nameof(A_small_gpts_hvp_through_attention_equals_the_cpus));
        // A failing check throws what the test threw, not reflection's wrapper: the harness prints that message.
        var e = Assert.Throws<ArgumentException>(() => checks[0].Run("tpu"));
        Assert.Contains("'tpu'", e.Message);
    }

    [CudaFact]
    public void The_conformance_suite_passes_on_cuda() => RunAll("cuda:0");

    [OpenClFact]
    public void The_conformance_suite_passes_on_opencl() => RunAll("opencl:0");

    private static void RunAll(string name)
    {
        foreach (var (check, run) in Checks()) run(name);
    }

    /// <summary>
    /// Every check of this suite that takes a device name (the theories over <see cref="Devices"/>), by name: what
    /// the CUDA and OpenCL facts run, and what the GPU harness (perf/Gpu, which references this project) runs on a machine
    /// that has no .NET SDK to run the tests with. Found by reflection, so a new theory joins both at once.
    /// </summary>
    public static IReadOnlyList<(string Name, Action<string> Run)> Checks() =>
        typeof(DeviceConformanceTests).GetMethods(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance)
            .Where(m => m.GetCustomAttributes(typeof(MemberDataAttribute), false).Cast<MemberDataAttribute>().Any(a => a.MemberName == nameof(Devices)))
            .OrderBy(m => m.MetadataToken)
            .Select(m => (m.Name, (Action<string>)(device =>
            {
                try { m.Invoke(new DeviceConformanceTests(), [device]); }
                catch (System.Reflection.TargetInvocationException e) when (e.InnerException is not null)
                {
                    System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerException).Throw();
                }
            })))
            .ToArray();
}

/// <summary>A test that needs a CUDA device; reported as skipped where the driver offers none.</summary>
public sealed class CudaFactAttribute : FactAttribute
{
    public CudaFactAttribute()
    {
        if (!DeviceCatalog.Accelerators().Any(a => a.Name == "cuda:0")) Skip = "no CUDA device on this machine";
    }
}

/// <summary>A test that needs an OpenCL device ILGPU accepts; reported as skipped where there is none.</summary>
public sealed class OpenClFactAttribute : FactAttribute
{
    public OpenClFactAttribute()
    {
        if (!DeviceCatalog.Accelerators().Any(a => a.Name == "opencl:0")) Skip = "no OpenCL device that ILGPU accepts on this machine";
    }
}
