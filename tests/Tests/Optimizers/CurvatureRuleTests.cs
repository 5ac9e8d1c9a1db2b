using Curvature.Engine;
using Curvature.Models;
using Curvature.Optimizers;
using Curvature.Spectral;
using FsCheck;
using FsCheck.Fluent;

namespace Curvature.Tests.Optimizers;

/// <summary>DCAO's two modes and two readings of the gap, CAEO's estimate when the dominant eigenvalue is negative, its noise, and the audit.</summary>
public class CurvatureRuleTests
{
    private static NdArray V(params double[] x) => NdArray.FromArray(x);

    private static StepContext Context(int step, Parameter p, ILinearOperator h, int auditEvery = 0) =>
        new() { Step = step, Loss = 1, Parameters = [p], Gradients = [p.Data.ZerosLike()], Curvature = () => h, AuditEvery = auditEvery };

    [Fact]
    public void Caeo_batch_estimator_steps_by_the_minibatch_rayleigh_quotient_along_its_gradient()
    {
        // H_B = diag(1, 4, 9), g_B = (1, 1, 1): g_BᵀH_Bg_B/‖g_B‖² = 14/3, so η = min(η_base, 1.5/(14/3)) = 0.3214…
        // (the full-batch probe operator, λmax 100, is not what this estimator reads).
        var p = new Parameter(V(0, 0, 0));
        var h = new DenseOperator(NdArray.FromArray(new double[] { 1, 0, 0, 0, 4, 0, 0, 0, 9 }, new Shape(3, 3)));
        var caeo = new Caeo(1.0, delta: 0.5, probeEvery: 1, estimator: CurvatureEstimator.Batch);
        caeo.Step(new StepContext
        {
            Step = 0, Loss = 1, Parameters = [p], Gradients = [V(1, 1, 1)], MinibatchCurvature = () => h,
            Curvature = () => new DenseOperator(NdArray.FromArray(new double[] { 100, 0, 0, 0, 1, 0, 0, 0, 1 }, new Shape(3, 3))),
        });
        Assert.Equal(14.0 / 3, caeo.Sharpness, 1e-12);
        Assert.Equal(1.5 / (14.0 / 3), caeo.Last.LearningRate, 1e-12);
        Assert.Equal(-1.5 / (14.0 / 3), p.Data.ToArray<double>()[0], 1e-12);
        var lost = new Caeo(1.0, estimator: CurvatureEstimator.Batch);
        var e = Assert.Throws<InvalidOperationException>(() => lost.Step(new StepContext { Step = 0, Loss = 1, Parameters = [new Parameter(V(0))], Gradients = [V(1)] }));
        Assert.Contains("needs the curvature", e.Message);
    }

    [Fact]
    public void Dcao_relative_mode_never_underflows_however_far_rho_grows()
    {
        // ρ growing by up to 10⁶ between probes drove the first-probe normalization to η ≈ 1e-193; against the running
        // mean ρ̄ (which includes the current probe) the ratio is at most 1/(1 − d), so η ≥ η₀·exp(−α/(1 − d)).
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(200), Prop.ForAll(Gen.Choose(0, 600).Select(i => i / 100.0).ArrayOf(8).ToArbitrary(), logGrowth =>
        {
            var dcao = new Dcao(0.1, 0.9, 1e-4, alpha: 0.5, beta: 0.5, c: 0.5, relative: true);
            double rho = 1;
            foreach (var lg in logGrowth)
            {
                rho *= Math.Pow(10, lg);
                var s = dcao.Schedule([rho, rho / 2, -rho / 4]);
                Assert.True(s.Rho <= 1 / (1 - dcao.ReferenceDecay) + 1e-9, $"ρ/ρ̄ = {s.Rho}");
                Assert.True(s.Eta >= 0.1 * Math.Exp(-0.5 * 10) * (1 - 1e-12), $"η = {s.Eta}");
            }
        }));
    }

    [Fact]
    public void Dcao_floor_bounds_every_factor_and_the_absolute_mode_is_the_seeds_formula()
    {
        var dcao = new Dcao(0.1, 0.9, 1e-2, alpha: 1, beta: 1, c: 1, floor: 1e-3);
        var s = dcao.Schedule([1000, 1, -5]);
        Assert.Equal(1e-4, s.Eta, 1e-15);           // 0.1·e^-1000 floored at 1e-3·η₀
        Assert.Equal(0.9e-3, s.Mu, 1e-15);
        Assert.Equal(1e-5, s.WeightDecay, 1e-15);
        var free = new Dcao(0.1, 0.9, 1e-2, alpha: 0.01, beta: 0.02, c: 0.03);
        var t = free.Schedule([40, 10, -5]);
        Assert.Equal(0.1 * Math.Exp(-0.01 * 40), t.Eta, 1e-15);
        Assert.Equal(0.9 * Math.Exp(-0.02 * 45), t.Mu, 1e-15);
        Assert.Equal(1e-2 * Math.Exp(-0.03 * 40), t.WeightDecay, 1e-15);
    }

    [Fact]
    public void Dcao_gap_accelerates_reading_raises_mu_with_the_gap()
    {
        var shrinks = new Dcao(0.1, 0.9, 0, beta: 0.1);
        var grows = new Dcao(0.1, 0.9, 0, beta: 0.1, gapAccelerates: true);
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(100), Prop.ForAll(Gen.Choose(1, 1000).ToArbitrary(), Gen.Choose(1, 1000).ToArbitrary(), (a, b) =>
        {
            double g1 = Math.Min(a, b) / 10.0, g2 = Math.Max(a, b) / 10.0 + 0.1;
            Assert.Equal(0.9 * (1 - Math.Exp(-0.1 * g1)), grows.Schedule([g1, 0]).Mu, 1e-12);
            Assert.True(grows.Schedule([g2, 0]).Mu > grows.Schedule([g1, 0]).Mu);
            Assert.True(shrinks.Schedule([g2, 0]).Mu < shrinks.Schedule([g1, 0]).Mu);
        }));
    }

    [Fact]
    public void Caeo_power_estimate_is_the_algebraic_top_when_the_dominant_eigenvalue_is_negative()
    {
        // Eigenvalues {−6, 1, 2}: plain power iteration converges to −6; CAEO must bound η by λmax = 2.
        var h = DenseOperator.Planted([-6, 1, 2], new RandomGenerator(3));
        var caeo = new Caeo(10, 0.5, probeEvery: 1, powerIterations: 500, powerTolerance: 1e-12);
        var p = new Parameter(V(0.3, -0.2, 0.1));
        caeo.Step(Context(0, p, h));
        Assert.Equal(2, caeo.Last.Sharpness!.Value, 1e-6);
        Assert.Equal(1.5 / 2, caeo.Last.LearningRate, 1e-6);
        // A continued estimate that turns non-positive restarts: the operator flips sign in its top direction.
        var flipped = DenseOperator.Planted([-6, 1, 3], new RandomGenerator(4));
        caeo.Step(Context(1, p, flipped));
        Assert.Equal(3, caeo.Last.Sharpness!.Value, 1e-4);
    }

    [Fact]
    public void Caeo_noise_adds_gaussian_noise_of_the_given_scale_and_nothing_without_it()
    {
        var w = new RandomGenerator(1).Normal(new Shape(20000), dtype: DType.Float64);
        var quiet = new Parameter(w);
        new Caeo(0.1, noise: 0).Step(new StepContext { Step = 0, Loss = 1, Parameters = [quiet], Gradients = [w.ZerosLike()], Curvature = () => new ScaledIdentity(20000) });
        Assert.Equal(w.ToArray<double>(), quiet.Data.ToArray<double>());
        var noisy = new Parameter(w);
        new Caeo(0.1, noise: 0.01).Step(new StepContext { Step = 0, Loss = 1, Parameters = [noisy], Gradients = [w.ZerosLike()], Curvature = () => new ScaledIdentity(20000) });
        var d = noisy.Data.ToArray<double>().Zip(w.ToArray<double>(), (a, b) => a - b).ToArray();
        double mean = d.Average(), std = Math.Sqrt(d.Sum(x => (x - mean) * (x - mean)) / (d.Length - 1));
        Assert.InRange(std, 0.0097, 0.0103);
        Assert.InRange(mean, -3e-4, 3e-4);
    }

    [Fact]
    public void An_audited_probe_logs_the_converged_lanczos_top_eigenvalue_beside_the_estimate()
    {
        // One power product per probe after the first leaves the estimate short of λmax; the audit is not.
        var h = DenseOperator.Planted([10, 9.5, 1, 0.5, -2], new RandomGenerator(5));
        var caeo = new Caeo(1, 0.5, probeEvery: 1, powerIterations: 2, powerTolerance: 1e-12);
        var p = new Parameter(V(0, 0, 0, 0, 0));
        for (int step = 0; step < 4; step++)
        {
            caeo.Step(Context(step, p, h, auditEvery: 2));
            if (step % 2 == 0) Assert.Equal(10, caeo.Last.AuditSharpness!.Value, 1e-6);
            else Assert.Null(caeo.Last.AuditSharpness);
            Assert.True(caeo.Last.Sharpness < 10 + 1e-9);
        }
        var dcao = new Dcao(0.1, k: 2, lanczosIterations: 2);
        dcao.Step(Context(0, p, h, auditEvery: 1));
        Assert.Equal(10, dcao.Last.AuditSharpness!.Value, 1e-6);
        var unaudited = new Caeo(1);
        unaudited.Step(Context(0, p, h));
        Assert.Null(unaudited.Last.AuditSharpness);
    }

    private sealed class ScaledIdentity(int n) : ILinearOperator
    {
        public long Dimension => n;
        public DType DType => DType.Float64;
        public Device Device => CpuDevice.Instance;
        public NdArray Apply(NdArray v) => v;
    }
}
