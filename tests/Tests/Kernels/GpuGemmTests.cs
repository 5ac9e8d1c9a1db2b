using Curvature.Kernels.Gpu;
using FsCheck;
using FsCheck.Fluent;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using Curvature.Kernels;

namespace Curvature.Tests.Kernels;

/// <summary>
/// The GPU GEMM kernel: every tiling against a triple loop, the GPU's own tilings (256 threads per group) included,
/// run on an ILGPU CPU accelerator that allows groups that large; and the PTX it compiles to for an H100, which
/// needs no GPU to produce: the accumulators and fragments must live in registers and the fragments must be read
/// as vectors, or the kernel runs at a fraction of the device's rate.
/// </summary>
[Collection(Curvature.Tests.CpuAccelerator.Name)]
public class GpuGemmTests
{
    // This class's own accelerators: an ILGPU CPU accelerator runs one launch at a time, and the engine's ilgpu-cpu
    // device, which other test classes use from their threads, serializes its launches under its own lock.
    private static readonly Lazy<Context> Host = new(() => Context.Create(b => Curvature.Engine.DeviceCatalog.Compiler(b.CPU())));

    // 32 threads per warp, 8 warps: groups of 256 emulated threads, as a GPU's.
    private static readonly Lazy<Accelerator> Wide = new(() => new CPUDevice(32, 8, 1).CreateCPUAccelerator(Host.Value, CPUAcceleratorMode.Parallel));

    // The engine's ilgpu-cpu geometry: groups of at most 16.
    private static readonly Lazy<Accelerator> Narrow = new(() => new CPUDevice(4, 4, 1).CreateCPUAccelerator(Host.Value, CPUAcceleratorMode.Parallel));

    private static double[] Reference(GemmArguments p, int batch, double[] a, double[] b, double[] a2, double[] b2, double[] c0)
    {
        var c = (double[])c0.Clone();
        for (int q = 0; q < batch; q++)
            for (int i = 0; i < p.M; i++)
                for (int j = 0; j < p.N; j++)
                {
                    double s = 0;
                    for (int k = 0; k < p.K; k++)
                    {
                        int atA = q * p.StrideA + (p.TransA == 0 ? i * p.Lda + k : k * p.Lda + i);
                        int atB = q * p.StrideB + (p.TransB == 0 ? k * p.Ldb + j : j * p.Ldb + k);
                        s += a[atA] * b[atB] + (p.Pairs == 2 ? a2[atA] * b2[atB] : 0);
                    }
                    int at = q * p.StrideC + i * p.Ldc + j;
                    c[at] = s;
                }
        return c;
    }

    /// <summary>The product on <paramref name="accelerator"/>: one launch, or with K split (p.Splits &gt; 1) a launch
    /// into a workspace of partial products and their sum into C, as the device runs them.</summary>
    private static double[] Run<C>(Accelerator accelerator, GemmArguments p, int batch, double[] a, double[] b, double[] a2, double[] b2, double[] c0)
        where C : struct, IGemmTile
    {
        using var da = accelerator.Allocate1D(a);
        using var db = accelerator.Allocate1D(b);
        using var da2 = accelerator.Allocate1D(a2);
        using var db2 = accelerator.Allocate1D(b2);
        using var dc = accelerator.Allocate1D(c0);
        using var partials = accelerator.Allocate1D<double>(Math.Max(1, batch * p.KRanges * p.M * p.N));
        var kernel = accelerator.LoadStreamKernel<ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<double>, GemmArguments>(Gemm.Multiply<double, C>);
        bool split = p.KRanges > 1;
        var args = split ? p.Partials : p;
        var (grid, group) = args.Launch<C>(batch);
        kernel(new KernelConfig(grid, group), da.View, db.View, da2.View, db2.View, split ? partials.View : dc.View, args);
        if (split)
        {
            var sum = accelerator.LoadStreamKernel<ArrayView<double>, ArrayView<double>, GemmArguments, int>(Gemm.SumSplits<double, Curvature.Kernels.Float64Kind>);
            sum(new KernelConfig(4, 16), partials.View, dc.View, p, batch);
        }
        accelerator.Synchronize();
        return dc.GetAsArray1D();
    }

    /// <summary>Random products: sizes that straddle every tile edge, both transposes, leading dimensions wider
    /// than the matrix (views into a larger one), batches, C's old values overwritten, and a second pair added in the same launch.</summary>
    private static Gen<(GemmArguments P, int Batch, int Seed)> Products(int maxSide, int minK = 1, int maxK = 40, int maxPad = 3) =>
        from m in Gen.Choose(1, maxSide)
        from n in Gen.Choose(1, maxSide)
        from k in Gen.Choose(minK, maxK)
        from flags in Gen.Choose(0, 7)
        from pad in Gen.Choose(0, maxPad)
        from batch in Gen.Choose(1, 2)
        from seed in Gen.Choose(0, 1000)
        select (Arguments(m, n, k, (flags & 1) != 0, (flags & 2) != 0, pad) with { Pairs = (flags & 4) != 0 ? 2 : 1 }, batch, seed);

    private static GemmArguments Arguments(int m, int n, int k, bool ta, bool tb, int pad)
    {
        int lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
        return new GemmArguments
        {
            M = m, N = n, K = k, TransA = ta ? 1 : 0, TransB = tb ? 1 : 0, Lda = lda, Ldb = ldb, Ldc = ldc,
            StrideA = (ta ? k : m) * lda, StrideB = (tb ? n : k) * ldb, StrideC = m * ldc,
        };
    }

    private static void Agrees<C>(Accelerator accelerator, GemmArguments p, int batch, int seed) where C : struct, IGemmTile
    {
        var r = new Random(seed);
        double[] Fill(int n) => Enumerable.Range(0, n).Select(_ => r.NextDouble() * 2 - 1).ToArray();
        var (a, b, c0) = (Fill(batch * p.StrideA), Fill(batch * p.StrideB), Fill(batch * p.StrideC));
        // A one-pair product must not read the second pair: NaN there would show.
        double[] Second(int n) => p.Pairs == 2 ? Fill(n) : Enumerable.Repeat(double.NaN, n).ToArray();
        var (a2, b2) = (Second(batch * p.StrideA), Second(batch * p.StrideB));
        var expected = Reference(p, batch, a, b, a2, b2, c0);
        var got = Run<C>(accelerator, p, batch, a, b, a2, b2, c0);
        for (int q = 0; q < batch; q++)
            for (int i = 0; i < p.M; i++)
                for (int j = 0; j < p.Ldc; j++)
                {
                    int at = q * p.StrideC + i * p.Ldc + j;
                    // Inside C: the product to float64 rounding; in the padding: untouched.
                    double want = j < p.N ? expected[at] : c0[at];
                    Assert.True(Math.Abs(got[at] - want) <= 1e-12 * (1 + Math.Abs(want)),
                        $"{typeof(C).Name} {p.M}×{p.N}×{p.K} transA={p.TransA} transB={p.TransB} ld=({p.Lda},{p.Ldb},{p.Ldc}) pairs={p.Pairs} splits={p.Splits}×{p.SplitDepth} batch {q}: C[{i},{j}] = {got[at]}, expected {want}");
                }
    }

    [Fact]
    public void Gpu_tilings_match_the_triple_loop()
    {
        // 256 emulated threads per group make each case slow on two cores: fewer cases, each spanning blocks.
        var accelerator = Wide.Value;
        var config = Config.QuickThrowOnFailure.WithMaxTest(30);
        Check.One(config, Prop.ForAll(Products(150).ToArbitrary(), t => Agrees<GpuLargeTile>(accelerator, t.P, t.Batch, t.Seed)));
        Check.One(config, Prop.ForAll(Products(80).ToArbitrary(), t => Agrees<GpuSmallTile>(accelerator, t.P, t.Batch, t.Seed)));
        // The thin tilings: rows across several blocks, columns across a 256- or 128-wide block's edge.
        var thin = Config.QuickThrowOnFailure.WithMaxTest(15);
        Check.One(thin, Prop.ForAll(Products(300).ToArbitrary(), t => Agrees<GpuThin16Tile>(accelerator, t.P with { M = Math.Min(t.P.M, 40) }, t.Batch, t.Seed)));
        Check.One(thin, Prop.ForAll(Products(150).ToArbitrary(), t => Agrees<GpuThin32Tile>(accelerator, t.P with { M = Math.Min(t.P.M, 70) }, t.Batch, t.Seed)));
    }

    [Fact]
    public void Cpu_accelerator_tilings_match_the_triple_loop()
    {
        var accelerator = Narrow.Value;
        Prop.ForAll(Products(50).ToArbitrary(), t => Agrees<CpuLargeTile>(accelerator, t.P, t.Batch, t.Seed)).QuickCheckThrowOnFailure();
        Prop.ForAll(Products(30).ToArbitrary(), t => Agrees<CpuSmallTile>(accelerator, t.P, t.Batch, t.Seed)).QuickCheckThrowOnFailure();
    }

    /// <summary>Products with K cut into ranges of a random depth (a multiple of the slice), the last one shorter.</summary>
    private static Gen<(GemmArguments P, int Batch, int Seed)> SplitProducts(int maxSide) =>
        from t in Products(maxSide, minK: 9, maxK: 200, maxPad: 2)
        from slices in Gen.Choose(1, 4)
        let depth = Math.Min(slices * Gemm.Depth, (t.P.K - 1) / Gemm.Depth * Gemm.Depth)
        select (t.P with { Splits = (t.P.TotalK + depth - 1) / depth, SplitDepth = depth }, t.Batch, t.Seed);

    [Fact]
    public void Split_k_products_match_the_triple_loop()
    {
        Prop.ForAll(SplitProducts(40).ToArbitrary(), t => Agrees<CpuSmallTile>(Narrow.Value, t.P, t.Batch, t.Seed)).QuickCheckThrowOnFailure();
        Prop.ForAll(SplitProducts(40).ToArbitrary(), t => Agrees<CpuLargeTile>(Narrow.Value, t.P, t.Batch, t.Seed)).QuickCheckThrowOnFailure();
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(10), Prop.ForAll(SplitProducts(70).ToArbitrary(), t => Agrees<GpuSmallTile>(Wide.Value, t.P, t.Batch, t.Seed)));
    }

    [Fact]
    public void K_is_split_only_when_the_blocks_leave_multiprocessors_idle_and_each_range_stays_deep()
    {
        // ResNet-20's first weight gradient at batch 128 on an H100 (132 multiprocessors): three 64×64 blocks.
        var resnet = Arguments(16, 144, 131_072, false, true, 0).SplitFor<GpuSmallTile>(1, 132);
        Assert.Equal((88, 1496), (resnet.Splits, resnet.SplitDepth));
        Assert.Equal(264, resnet.Groups<GpuSmallTile>(1));
        // SGEMM at 4096 fills the device already; a short K is not worth cutting.
        Assert.Equal(0, Arguments(4096, 4096, 4096, false, false, 0).SplitFor<GpuSmallTile>(1, 132).Splits);
        Assert.Equal(0, Arguments(16, 16, 511, false, false, 0).SplitFor<GpuSmallTile>(1, 132).Splits);

        Prop.ForAll(Gen.Choose(1, 3000).ToArbitrary(), Gen.Choose(1, 3000).ToArbitrary(), Gen.Choose(1, 1 << 20).ToArbitrary(), (m, n, k) =>
        {
            var p = Arguments(m, n, k, false, false, 0);
            var s = p.SplitFor<GpuSmallTile>(1, 132);
            long before = p.Groups<GpuSmallTile>(1);
            if (before >= 132 || k < 2 * Gemm.MinSplitDepth) return s.Splits == 0;
            return s.SplitDepth % Gemm.Depth == 0 && s.SplitDepth >= Gemm.MinSplitDepth
                && (long)(s.Splits - 1) * s.SplitDepth < k && (long)s.Splits * s.SplitDepth >= k
                && s.Splits <= Gemm.MaxSplits && s.Groups<GpuSmallTile>(1) <= 2 * 132 + before;
        }).QuickCheckThrowOnFailure();
    }

    private static (GemmTiling Tiling, GemmArguments Product) GpuPlan(GemmArguments p, int batch = 1) =>
        Gemm.Plan<GpuLargeTile, GpuSmallTile, GpuThin16Tile, GpuThin32Tile>(p, batch, 132);

    private static long Issued((GemmTiling Tiling, GemmArguments Product) plan, int batch = 1) => plan.Tiling switch
    {
        GemmTiling.Large => Gemm.IssuedMultiplyAdds<GpuLargeTile>(plan.Product, batch),
        GemmTiling.Small => Gemm.IssuedMultiplyAdds<GpuSmallTile>(plan.Product, batch),
        GemmTiling.Thin16 => Gemm.IssuedMultiplyAdds<GpuThin16Tile>(plan.Product, batch),
        _ => Gemm.IssuedMultiplyAdds<GpuThin32Tile>(plan.Product, batch),
    };

    [Fact]
    public void A_product_of_few_rows_takes_the_thin_block_that_holds_them()
    {
        Prop.ForAll(Gen.Choose(1, 3000).ToArbitrary(), Gen.Choose(1, 1 << 18).ToArbitrary(), Gen.Choose(1, 1 << 16).ToArbitrary(), (m, n, k) =>
        {
            var p = Arguments(m, n, k, false, false, 0);
            var (tiling, product) = GpuPlan(p);
            var expected = m <= 16 ? GemmTiling.Thin16 : m <= 32 ? GemmTiling.Thin32 : p.Groups<GpuLargeTile>(1) >= 264 ? GemmTiling.Large : GemmTiling.Small;
            // The split is the chosen tiling's own (or none), and a large block is never split.
            var split = tiling switch
            {
                GemmTiling.Thin16 => p.SplitFor<GpuThin16Tile>(1, 132),
                GemmTiling.Thin32 => p.SplitFor<GpuThin32Tile>(1, 132),
                GemmTiling.Small => p.SplitFor<GpuSmallTile>(1, 132),
                _ => p,
            };
            return tiling == expected && product.Equals(split);
        }).QuickCheckThrowOnFailure();
        Assert.Equal(0, Gemm.IssuedMultiplyAdds<GpuThin16Tile>(Arguments(16, 256, 64, false, false, 0), 3) - 3L * 16 * 256 * 64);
        Assert.Equal(2L * 128 * 128 * 16, Gemm.IssuedMultiplyAdds<GpuLargeTile>(Arguments(16, 129, 9, false, false, 0), 1));
        // Split ranges start on whole slices and pad nothing; a second pair starts on the next whole slice.
        var deep = Arguments(16, 144, 100_001, false, true, 0);
        Assert.True(deep.SplitFor<GpuThin16Tile>(1, 132).Splits > 1);
        Assert.Equal(Gemm.IssuedMultiplyAdds<GpuThin16Tile>(deep, 1), Gemm.IssuedMultiplyAdds<GpuThin16Tile>(deep.SplitFor<GpuThin16Tile>(1, 132), 1));
        Assert.Equal(16L * 256 * (100_008 + 100_008), Gemm.IssuedMultiplyAdds<GpuThin16Tile>(deep with { Pairs = 2 }, 1));
        Assert.Equal(2L * 16 * 144 * 100_001, Gemm.UsefulMultiplyAdds(deep with { Pairs = 2 }, 1));
    }

    [Fact]
    public void ResNet20s_convolution_products_issue_at_most_a_third_more_multiply_adds_than_they_use()
    {
        // The im2col products of one ResNet-20 training step at batch 128 on an H100 (132 multiprocessors): forward
        // O×(N·Q)×K, weight gradient O×K×(N·Q), input gradient K×(N·Q)×O, K = C·kh·kw. With 128- and 64-row blocks only,
        // the 16- and 32-channel stages issued 2.77 multiply-adds per useful one over the step.
        var convolutions = new List<(int C, int O, int H, int Stride, int Taps)> { (3, 16, 32, 1, 9) };
        for (int i = 0; i < 6; i++) convolutions.Add((16, 16, 32, 1, 9));
        convolutions.AddRange([(16, 32, 32, 2, 9), (16, 32, 32, 2, 1)]);
        for (int i = 0; i < 5; i++) convolutions.Add((32, 32, 16, 1, 9));
        convolutions.AddRange([(32, 64, 16, 2, 9), (32, 64, 16, 2, 1)]);
        for (int i = 0; i < 5; i++) convolutions.Add((64, 64, 8, 1, 9));
        long useful = 0, issued = 0;
        foreach (var (c, o, h, stride, taps) in convolutions)
        {
            int columns = 128 * (h / stride) * (h / stride), k = c * taps;
            var products = new List<GemmArguments> { Arguments(o, columns, k, false, false, 0), Arguments(o, k, columns, false, true, 0) };
            if (c != 3) products.Add(Arguments(k, columns, o, true, false, 0));
            foreach (var p in products)
            {
                useful += Gemm.UsefulMultiplyAdds(p, 1);
                issued += Issued(GpuPlan(p));
            }
        }
        Assert.True(issued <= 4 * useful / 3, $"{(double)issued / useful:F2} multiply-adds issued per useful one");
    }

    [Fact]
    public void The_device_counts_the_multiply_adds_its_products_need_and_issue()
    {
        using var d = new Curvature.Engine.AcceleratorDevice(new CPUDevice(4, 4, 1).CreateCPUAccelerator(Host.Value, CPUAcceleratorMode.Parallel), "ilgpu-cpu (gemm tests)");
        var a = Curvature.Engine.NdArray.Full(new Curvature.Engine.Shape(5, 7), 1.0, Curvature.Engine.DType.Float32, d);
        var b = Curvature.Engine.NdArray.Full(new Curvature.Engine.Shape(7, 9), 2.0, Curvature.Engine.DType.Float32, d);
        Assert.Equal((0L, 0L), d.GemmMultiplyAdds);
        Assert.All(a.MatMul(b).ToArray<float>(), v => Assert.Equal(14f, v));
        // Five rows take the 16-row block: one 16×16 block over K = 7 rounded up to a slice of 8.
        Assert.Equal((5L * 9 * 7, 16L * 16 * 8), d.GemmMultiplyAdds);
    }

    private static string PtxOf<T, C>() where T : unmanaged, System.Numerics.IFloatingPointIeee754<T> where C : struct, IGemmTile =>
        GpuCompilers.Ptx(typeof(Gemm).GetMethod(nameof(Gemm.Multiply))!.MakeGenericMethod(typeof(T), typeof(C)));

    [Fact]
    public void The_gpu_kernels_compile_to_register_blocked_ptx_with_vector_fragment_loads()
    {
        // Per slice of 8: each thread reads H quads of A and H of B per k and does 16·H² multiply-adds, unrolled.
        var large = PtxOf<float, GpuLargeTile>();
        Assert.DoesNotContain(".local", large);
        Assert.Equal(2 * 2 * Gemm.Depth, GpuCompilers.Count(large, "ld.shared.v4.f32"));
        Assert.Equal(64 * Gemm.Depth, GpuCompilers.Count(large, "mul.f32"));

        var small = PtxOf<float, GpuSmallTile>();
        Assert.DoesNotContain(".local", small);
        Assert.Equal(2 * Gemm.Depth, GpuCompilers.Count(small, "ld.shared.v4.f32"));
        Assert.Equal(16 * Gemm.Depth, GpuCompilers.Count(small, "mul.f32"));

        foreach (var thin in new[] { PtxOf<float, GpuThin16Tile>(), PtxOf<float, GpuThin32Tile>() })
        {
            Assert.DoesNotContain(".local", thin);
            Assert.Equal(2 * Gemm.Depth, GpuCompilers.Count(thin, "ld.shared.v4.f32"));
            Assert.Equal(16 * Gemm.Depth, GpuCompilers.Count(thin, "mul.f32"));
        }

        // float64 quads are 32 bytes: two 16-byte vectors each.
        var dgemm = PtxOf<double, GpuLargeTile>();
        Assert.DoesNotContain(".local", dgemm);
        Assert.Equal(2 * 2 * 2 * Gemm.Depth, GpuCompilers.Count(dgemm, "ld.shared.v2.f64"));
        Assert.Equal(64 * Gemm.Depth, GpuCompilers.Count(dgemm, "mul.f64"));
    }
}
