using Curvature.Autodiff;
using Curvature.Engine;
using Curvature.Kernels;
using Curvature.Kernels.Gpu;
using Curvature.Models;
using Curvature.Optimizers;
using Curvature.Spectral;
using ILGPU.Runtime.CPU;
using FsCheck;
using FsCheck.Fluent;

namespace Curvature.Tests.Optimizers;

/// <summary>Each update rule against a float64 hand computation, and the curvature rules on quadratics.</summary>
[Collection(Curvature.Tests.CpuAccelerator.Name)]
public class OptimizerTests
{
    private static NdArray V(params double[] x) => NdArray.FromArray(x);

    private static StepContext Context(int step, Parameter[] ps, NdArray[] grads, double loss = 1, Func<ILinearOperator>? curvature = null) =>
        new() { Step = step, Loss = loss, Parameters = ps, Gradients = grads, Curvature = curvature };

    /// <summary>f(w) = ½ Σ λᵢ wᵢ²: gradient λ ⊙ w, Hessian diag(λ).</summary>
    private sealed class Quadratic(double[] lambda)
    {
        public readonly NdArray Lambda = V(lambda);
        public double Loss(NdArray w) => 0.5 * (w * w).Dot(Lambda);
        public NdArray Gradient(NdArray w) => w * Lambda;
        public ILinearOperator Hessian(NdArray w) => new HessianOperator(p => (p[0] * p[0] * (Tensor)Lambda).Sum() * 0.5, [w]);
        public StepContext Step(int step, Parameter p) => Context(step, [p], [Gradient(p.Data)], Loss(p.Data), () => Hessian(p.Data));
    }

    private static readonly Gen<double[]> Vectors3 = Gen.Choose(-1000, 1000).Select(i => i / 100.0).ArrayOf(3);

    [Fact]
    public void Sgd_momentum_and_nesterov_match_hand_computation()
    {
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(30), Prop.ForAll(Vectors3.ToArbitrary(), Vectors3.ToArbitrary(), Vectors3.ToArbitrary(), (w0, g1, g2) =>
        {
            const double eta = 0.1, mu = 0.9, wd = 0.01;
            foreach (bool nesterov in new[] { false, true })
            {
                var p = new Parameter(V(w0));
                var opt = new Momentum(eta, mu, nesterov, wd);
                var w = (double[])w0.Clone();
                var b = new double[3];
                foreach (var g in new[] { g1, g2 })
                {
                    var gw = Enumerable.Range(0, 3).Select(i => g[i] + wd * w[i]).ToArray();
                    for (int i = 0; i < 3; i++) { b[i] = mu * b[i] + gw[i]; w[i] -= eta * (nesterov ? gw[i] + mu * b[i] : b[i]); }
                    opt.Step(Context(0, [p], [V(g)]));
                }
                var got = p.Data.ToArray<double>();
                for (int i = 0; i < 3; i++) Assert.Equal(w[i], got[i], 1e-12);
            }
            var q = new Parameter(V(w0));
            new GradientDescent(eta).Step(Context(0, [q], [V(g1)]));
            for (int i = 0; i < 3; i++) Assert.Equal(w0[i] - eta * g1[i], q.Data.ToArray<double>()[i], 1e-12);
        }));
    }

    [Fact]
    public void Float32_sgd_and_momentum_steps_round_as_their_formulas_written_op_by_op()
    {
        // The updates are linear combinations (one launch each on an accelerator); they must round exactly as
        // w − (g + λw)·η and b = μb + g, w − η·b do when each op rounds to float32 in turn.
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(30), Prop.ForAll(Vectors3.ToArbitrary(), Vectors3.ToArbitrary(), Vectors3.ToArbitrary(), (w0, g1, g2) =>
        {
            const double eta = 0.1, mu = 0.9, wd = 0.01;
            foreach (var device in new Device[] { CpuDevice.Instance, DeviceCatalog.IlgpuCpu })
            {
                NdArray F(double[] x) => V(x).Cast(DType.Float32).To(device);
                var sgd = new Parameter(F(w0));
                new GradientDescent(eta, wd).Step(Context(0, [sgd], [F(g1)]));
                Assert.Equal((F(w0) - (F(g1) + F(w0) * wd) * eta).ToArray<float>(), sgd.Data.ToArray<float>());

                foreach (bool nesterov in new[] { false, true })
                {
                    var p = new Parameter(F(w0));
                    var momentum = new Momentum(eta, mu, nesterov, weightDecay: wd);
                    NdArray w = F(w0), b = F([0, 0, 0]);
                    foreach (var (step, g) in new[] { (0, g1), (1, g2) })
                    {
                        momentum.Step(Context(step, [p], [F(g)]));
                        var decayed = F(g) + w * wd;
                        b = b * mu + decayed;
                        w = nesterov ? w - (decayed + b * mu) * eta : w - b * eta;
                        Assert.Equal(w.ToArray<float>(), p.Data.ToArray<float>());
                    }
                }
            }
        }));
    }

    [Fact]
    public void Adam_and_adamw_match_hand_computation()
    {
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(30), Prop.ForAll(Vectors3.ToArbitrary(), Vectors3.ToArbitrary(), Vectors3.ToArbitrary(), (w0, g1, g2) =>
        {
            const double eta = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1;
            foreach (bool decoupled in new[] { false, true })
            {
                var p = new Parameter(V(w0));
                var opt = new Adam(eta, b1, b2, eps, wd, decoupled);
                var w = (double[])w0.Clone();
                double[] m = new double[3], v = new double[3];
                int t = 0;
                foreach (var g in new[] { g1, g2 })
                {
                    t++;
                    for (int i = 0; i < 3; i++)
                    {
                        double gi = decoupled ? g[i] : g[i] + wd * w[i];
                        m[i] = b1 * m[i] + (1 - b1) * gi;
                        v[i] = b2 * v[i] + (1 - b2) * gi * gi;
                        double mh = m[i] / (1 - Math.Pow(b1, t)), vh = v[i] / (1 - Math.Pow(b2, t));
                        if (decoupled) w[i] *= 1 - eta * wd;
                        w[i] -= eta * mh / (Math.Sqrt(vh) + eps);
                    }
                    opt.Step(Context(t - 1, [p], [V(g)]));
                }
                var got = p.Data.ToArray<double>();
                for (int i = 0; i < 3; i++) Assert.Equal(w[i], got[i], 1e-12);
            }
        }));
    }

    [Fact]
    public void Float32_adam_computes_in_float64_and_rounds_each_moment_and_the_weights_once()
    {
        // The fused update (one pass, one launch per parameter on an accelerator): m' and v' from float64 arithmetic
        // rounded to float32, the direction from those rounded moments, w' rounded once; the same bits on both devices.
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(30), Prop.ForAll(Vectors3.ToArbitrary(), Vectors3.ToArbitrary(), Vectors3.ToArbitrary(), (w0, g1, g2) =>
        {
            const double eta = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1;
            foreach (var device in new Device[] { CpuDevice.Instance, DeviceCatalog.IlgpuCpu })
                foreach (bool decoupled in new[] { false, true })
                {
                    var p = new Parameter(V(w0).Cast(DType.Float32).To(device));
                    // One optimizer steps; the other, fed the same gradients at the same weights, returns its directions.
                    Adam opt = new(eta, b1, b2, eps, wd, decoupled), directions = new(eta, b1, b2, eps, wd, decoupled);
                    float[] w = w0.Select(x => (float)x).ToArray(), m = new float[3], v = new float[3], d = new float[3];
                    int t = 0;
                    foreach (var g in new[] { g1, g2 })
                    {
                        t++;
                        for (int i = 0; i < 3; i++)
                        {
                            double gi = decoupled ? (float)g[i] : (float)g[i] + wd * w[i];
                            m[i] = (float)(b1 * m[i] + (1 - b1) * gi);
                            v[i] = (float)(b2 * v[i] + (1 - b2) * gi * gi);
                            double di = m[i] * (1 / (1 - Math.Pow(b1, t))) / (Math.Sqrt(v[i] * (1 / (1 - Math.Pow(b2, t)))) + eps);
                            d[i] = (float)di;
                            w[i] = (float)((decoupled ? 1 - eta * wd : 1) * w[i] - eta * di);
                        }
                        var gradient = V(g).Cast(DType.Float32).To(device);
                        Assert.Equal(d, directions.Directions(Context(t - 1, [new Parameter(p.Data)], [gradient]))[0].ToArray<float>());
                        opt.Step(Context(t - 1, [p], [gradient]));
                        Assert.Equal(w, p.Data.ToArray<float>());
                    }
                }
        }));
    }

    // An accelerator of this class's own, so no other test's launches land in the count.
    private static readonly Lazy<AcceleratorDevice> OwnAccelerator = new(() => new AcceleratorDevice(
        new CPUDevice(4, 4, 1).CreateCPUAccelerator(
            ILGPU.Context.Create(b => DeviceCatalog.Compiler(b.CPU())), CPUAcceleratorMode.Parallel), "ilgpu-cpu (optimizer tests)"));

    [Fact]
    public void The_cpus_vectorized_updates_give_the_scalar_rules_bits()
    {
        // The CPU kernels run the rules several lanes at a time and the scalar rule on the tail; both must give its bits
        // (momentum's: those of its linear combinations written op by op).
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(40), Prop.ForAll(Gen.Choose(1, 70).ToArbitrary(), Gen.Choose(0, 1000).ToArbitrary(), (n, seed) =>
        {
            var rng = new RandomGenerator((ulong)seed);
            var step = new AdamStep
            {
                Beta1 = 0.9, Beta2 = 0.999, Epsilon = 1e-8, L2 = seed % 2 == 0 ? 0.1 : 0, Correction1 = 1 / (1 - Math.Pow(0.9, 1 + seed % 7)),
                Correction2 = 1 / (1 - Math.Pow(0.999, 1 + seed % 7)), Keep = seed % 3 == 0 ? 0.999 : 1, LearningRate = 0.01, Apply = seed % 5 == 0 ? 0 : 1,
            };
            foreach (var t in new[] { DType.Float32, DType.Float64 })
            {
                var (w, g, m) = (rng.Normal(new Shape(n), dtype: t), rng.Normal(new Shape(n), dtype: t), rng.Normal(new Shape(n), dtype: t));
                var v = rng.Normal(new Shape(n), dtype: t) * rng.Normal(new Shape(n), dtype: t);
                v *= v;
                var (mNext, vNext, result) = FusedUpdates.Adam(w, g, m, v, step);
                double[] wd = w.ToDoubleArray(), gd = g.ToDoubleArray(), md = m.ToDoubleArray(), vd = v.ToDoubleArray();
                double[] gotM = mNext.ToDoubleArray(), gotV = vNext.ToDoubleArray(), gotR = result.ToDoubleArray();
                for (int i = 0; i < n; i++)
                {
                    var e = t == DType.Float32
                        ? Widen(UpdateRules.Adam<float, Float32Kind>((float)wd[i], (float)gd[i], (float)md[i], (float)vd[i], step))
                        : UpdateRules.Adam<double, Float64Kind>(wd[i], gd[i], md[i], vd[i], step);
                    Assert.Equal((e.M, e.V, e.Result), (gotM[i], gotV[i], gotR[i]));
                }
                foreach (bool nesterov in new[] { false, true })
                {
                    double mu = 0.9, l2 = seed % 2 == 0 ? 0.01 : 0, eta = 0.1;
                    var (b, stepped) = FusedUpdates.Momentum(w, g, m, new MomentumStep { Momentum = mu, L2 = l2, LearningRate = eta, Nesterov = nesterov ? 1 : 0 });
                    var decayed = l2 != 0 ? NdArray.LinearCombination([g, w], [1, l2]) : g;
                    var bWant = NdArray.LinearCombination([m, decayed], [mu, 1]);
                    var wWant = nesterov ? w - (decayed + bWant * mu) * eta : NdArray.LinearCombination([w, bWant], [1, -eta]);
                    Assert.Equal(bWant.ToDoubleArray(), b.ToDoubleArray());
                    Assert.Equal(wWant.ToDoubleArray(), stepped.ToDoubleArray());
                }
            }
        }));
        static AdamElement<double> Widen(AdamElement<float> e) => new(e.M, e.V, e.Result);
    }

    [Fact]
    public void Adam_and_momentum_update_a_parameter_array_in_one_launch()
    {
        var d = OwnAccelerator.Value;
        var rng = new RandomGenerator(5);
        var ps = new[] { new Parameter(rng.Normal(new Shape(7, 3), device: d)), new Parameter(rng.Normal(new Shape(5), device: d)) };
        var grads = ps.Select(p => rng.Normal(p.Shape, device: d)).ToArray();
        foreach (IOptimizer opt in new IOptimizer[] { new Adam(0.01, weightDecay: 0.1), new Adam(0.01, weightDecay: 0.1, decoupled: true), new Momentum(0.1, 0.9, weightDecay: 0.01), new Momentum(0.1, 0.9, nesterov: true) })
        {
            opt.Step(Context(0, ps, grads)); // makes the state (a fill per buffer)
            long before = d.KernelLaunches;
            opt.Step(Context(1, ps, grads));
            Assert.Equal(ps.Length, d.KernelLaunches - before);
        }
        var e = Assert.Throws<ArgumentException>(() => FusedUpdates.Adam(ps[0].Data, grads[1], ps[0].Data, ps[0].Data, default));
        Assert.Equal("adam_update: weights [7, 3] and gradient [5]; expected the same shape.", e.Message);
    }

    [Fact]
    public void Adamw_with_a_zero_gradient_shrinks_the_weights_by_exactly_one_minus_eta_lambda()
    {
        var w0 = new RandomGenerator(1).Normal(new Shape(50), dtype: DType.Float64);
        var p = new Parameter(w0);
        var opt = new Adam(0.01, weightDecay: 0.1, decoupled: true);
        opt.Step(Context(0, [p], [w0.ZerosLike()]));
        Assert.Equal((w0 * (1 - 0.01 * 0.1)).ToArray<double>(), p.Data.ToArray<double>());
    }

    [Fact]
    public void L4_first_step_matches_the_formula_and_is_unchanged_when_the_direction_is_rescaled()
    {
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(30), Prop.ForAll(Vectors3.ToArbitrary(), Gen.Choose(1, 1000).ToArbitrary(), (w0, scale) =>
        {
            var q = new Quadratic([1, 2, 3]);
            if (q.Loss(V(w0)) < 1e-6) return;
            double s = scale / 10.0;
            var a = new Parameter(V(w0));
            var b = new Parameter(V(w0));
            var la = new L4(c => c.Gradients.ToArray());
            var lb = new L4(c => c.Gradients.Select(g => g * s).ToArray());
            for (int step = 0; step < 3; step++)
            {
                var ca = q.Step(step, a);
                if (step == 0)
                {
                    // L_min = 0.75 L; ĝ = g (bias-corrected); η = α (L − γ·0.75 L)/(g·g).
                    double L = ca.Loss, gg = ca.Gradients[0].Dot(ca.Gradients[0]);
                    var expected = (V(w0) - ca.Gradients[0] * (0.15 * (L - 0.9 * 0.75 * L) / (gg + 1e-12))).ToArray<double>();
                    la.Step(ca);
                    var got = a.Data.ToArray<double>();
                    for (int i = 0; i < 3; i++) Assert.Equal(expected[i], got[i], 1e-10);
                }
                else la.Step(ca);
                lb.Step(q.Step(step, b));
                var wa = a.Data.ToArray<double>(); var wb = b.Data.ToArray<double>();
                for (int i = 0; i < 3; i++) Assert.Equal(wa[i], wb[i], 1e-9 * Math.Max(1, Math.Abs(wa[i])));
            }
        }));
    }

    [Fact]
    public void L4_refuses_a_negative_loss_naming_the_step()
    {
        var p = new Parameter(V(1, 2));
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new L4().Step(Context(7, [p], [V(1, 1)], loss: -0.5)));
        Assert.Contains("step 7", e.Message);
        Assert.Contains("non-negative", e.Message);
    }

    [Theory]
    [InlineData("gd", 0.0)]
    [InlineData("momentum", 0.9)]
    [InlineData("momentum", 0.5)]
    [InlineData("nesterov", 0.9)]
    [InlineData("nesterov", 0.5)]
    public void On_a_quadratic_each_rule_is_stable_just_below_its_edge_and_unstable_just_above(string rule, double mu)
    {
        // The edge η·λ of eos's threshold lines (StabilityEdge): the update's linear recurrence on f = ½λw² has
        // its eigenvalue cross −1 there. 3% either side: the loss falls below 1e-3 of its start, or rises above 1e3.
        const double lambda = 10;
        double edge = Curvature.Lab.Eos.StabilityLimit(rule, mu) / lambda;
        foreach (var (eta, stable) in new[] { (0.97 * edge, true), (1.03 * edge, false) })
        {
            var q = new Quadratic([lambda]);
            var p = new Parameter(V(1.0));
            IOptimizer opt = rule == "gd" ? new GradientDescent(eta) : new Momentum(eta, mu, nesterov: rule == "nesterov");
            for (int t = 0; t < 3000 && q.Loss(p.Data) < 1e6; t++) opt.Step(q.Step(t, p)); // unstable runs stop once clearly growing
            double ratio = q.Loss(p.Data) / q.Loss(V(1.0));
            if (stable) Assert.True(ratio < 1e-3, $"{rule} μ {mu} at η = 0.97·edge: loss ratio {ratio}");
            else Assert.True(!(ratio < 1e3), $"{rule} μ {mu} at η = 1.03·edge: loss ratio {ratio}");
        }
    }

    [Fact]
    public void On_a_quadratic_gd_beyond_2_over_lambda_diverges_while_caeo_converges_below_the_edge()
    {
        var q = new Quadratic([10, 1, 0.1]);
        double eta = 0.25; // 2/λmax = 0.2 < η
        var gd = new Parameter(V(1, 1, 1));
        var opt = new GradientDescent(eta);
        for (int t = 0; t < 50; t++) opt.Step(q.Step(t, gd));
        Assert.True(q.Loss(gd.Data) > 1e6, $"GD loss {q.Loss(gd.Data)}");

        foreach (var (delta, momentum) in new[] { (0.5, 0.0), (0.1, 0.0), (1.0, 0.0), (0.5, 0.9) })
        {
            var p = new Parameter(V(1, 1, 1));
            var caeo = new Caeo(eta, delta, probeEvery: 5, momentum: momentum, powerIterations: 100, powerTolerance: 1e-10);
            for (int t = 0; t < 300; t++)
            {
                caeo.Step(q.Step(t, p));
                if (caeo.Last.Sharpness is { } lambda)
                {
                    Assert.Equal(10, lambda, 1e-6);
                    Assert.True(caeo.Last.LearningRate * lambda <= caeo.StabilityLimit - delta + 1e-9);
                }
            }
            Assert.Equal(Math.Min(eta, (2 + 2 * momentum - delta) / 10), caeo.Last.LearningRate, 1e-9);
            Assert.True(q.Loss(p.Data) < q.Loss(V(1, 1, 1)) * 0.1, $"CAEO δ={delta} μ={momentum} loss {q.Loss(p.Data)}");
        }
    }

    [Fact]
    public void Caeo_adam_bounds_the_step_by_the_preconditioned_sharpness()
    {
        // After one step v̂ = g², so P = |g| + ε and P⁻¹H = diag(λᵢ / (λᵢ|wᵢ| + ε)).
        double[] lambda = [10, 1, 0.1], w0 = [0.5, -2, 4];
        var q = new Quadratic(lambda);
        var p = new Parameter(V(w0));
        var caeo = new Caeo(1.0, 0.5, adaptive: true, powerIterations: 200, powerTolerance: 1e-12);
        caeo.Step(q.Step(0, p));
        double expected = Enumerable.Range(0, 3).Max(i => lambda[i] / (lambda[i] * Math.Abs(w0[i]) + 1e-8));
        Assert.Equal(expected, caeo.Last.Sharpness!.Value, 1e-6 * expected);
        Assert.Equal(38, caeo.StabilityLimit, 1e-12);
        Assert.Equal(Math.Min(1.0, 37.5 / expected), caeo.Last.LearningRate, 1e-6);
        Assert.Equal("caeo-adam", caeo.Name);
    }

    [Fact]
    public void A_non_finite_curvature_estimate_stops_the_step_naming_it()
    {
        var p = new Parameter(V(1, 2));
        var before = p.Data.ToArray<double>();
        var nan = new DenseOperator(NdArray.FromArray(new[] { double.NaN, 0, 0, 1 }, new Shape(2, 2)));
        var e = Assert.Throws<ArithmeticException>(() => new Caeo(0.1).Step(Context(3, [p], [V(1, 1)], curvature: () => nan)));
        Assert.Contains("step 3", e.Message);
        Assert.Equal(before, p.Data.ToArray<double>());
        Assert.Throws<ArithmeticException>(() => new GradientDescent(0.1).Step(Context(5, [p], [V(1, 1)], loss: double.NaN)));
    }

    [Fact]
    public void Caeo_hutchinson_estimate_underestimates_lambda_max()
    {
        var q = new Quadratic([10, 1, 0.1, 0.1, 0.1]);
        var p = new Parameter(V(1, 1, 1, 1, 1));
        var caeo = new Caeo(1, 0.5, estimator: CurvatureEstimator.Hutchinson, hutchinsonProbes: 20);
        caeo.Step(q.Step(0, p));
        Assert.Equal(11.3 / 5, caeo.Last.Sharpness!.Value, 1e-9); // every Rademacher quotient is tr(H)/n on a diagonal
        Assert.True(caeo.Last.Sharpness < 10);
    }

    [Fact]
    public void Caeo_with_kfac_steps_below_the_edge_of_the_kronecker_factored_curvature()
    {
        var rng = new RandomGenerator(2);
        var model = Mlp.Create(rng, width: 5, inputs: 4, classes: 3, dtype: DType.Float64);
        var x = rng.Normal(new Shape(16, 4), dtype: DType.Float64);
        var y = rng.Integers(new Shape(16), 3);
        var ps = model.Parameters();
        var (value, grads) = Derivatives.ValueAndGrad(Loss.Function(model, "ce", x, y), ps.Select(p => (Tensor)p.Data).ToArray());
        double expected = KroneckerFactoredCurvature.Compute(model, "ce", x, new RandomGenerator(9)).TopEigenvalue();
        var caeo = new Caeo(100, 0.5, estimator: CurvatureEstimator.Kfac);
        caeo.Step(new StepContext
        {
            Step = 0, Loss = value.ToScalar(), Parameters = ps, Gradients = grads.Select(g => g.Data).ToArray(),
            Kfac = (_, _) => KroneckerFactoredCurvature.Compute(model, "ce", x, new RandomGenerator(9)),
        });
        Assert.Equal(expected, caeo.Last.Sharpness!.Value, 1e-12);
        Assert.Equal(1.5 / expected, caeo.Last.LearningRate, 1e-12);
    }

    [Fact]
    public void Dcao_eta_falls_as_rho_grows_and_mu_as_gamma_grows()
    {
        var dcao = new Dcao(0.1, 0.9, 0.01, alpha: 0.05, beta: 0.02, c: 0.03);
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(100), Prop.ForAll(Vectors3.ToArbitrary(), Gen.Choose(1, 500).ToArbitrary(), (ritz, grow) =>
        {
            var a = dcao.Schedule(ritz);
            var scaled = ritz.Select(x => x * (1 + grow / 100.0)).ToArray();
            var b = dcao.Schedule(scaled);
            Assert.Equal(0.1 * Math.Exp(-0.05 * ritz.Max(Math.Abs)), a.Eta, 1e-12);
            Assert.Equal(0.9 * Math.Exp(-0.02 * (ritz.Max() - ritz.Min())), a.Mu, 1e-12);
            Assert.Equal(0.01 * Math.Exp(-0.03 * ritz.Max(Math.Abs)), a.WeightDecay, 1e-12);
            if (a.Rho > 0) Assert.True(b.Eta < a.Eta);
            if (a.Gamma > 0) Assert.True(b.Mu < a.Mu);
        }));
    }

    [Fact]
    public void Dcao_steps_with_momentum_and_decoupled_decay_and_its_relative_mode_starts_at_one()
    {
        var q = new Quadratic([4, 2, 1]);
        var p = new Parameter(V(1, -1, 0.5));
        var dcao = new Dcao(0.1, 0.9, 0.01, alpha: 0.05, beta: 0.02, c: 0.03, k: 3, lanczosIterations: 3);
        var ctx = q.Step(0, p);
        var g = ctx.Gradients[0].ToArray<double>();
        dcao.Step(ctx);
        double eta = 0.1 * Math.Exp(-0.05 * 4), wd = 0.01 * Math.Exp(-0.03 * 4);
        Assert.Equal(4, dcao.Last.Sharpness!.Value, 1e-9);
        Assert.Equal(eta, dcao.Last.LearningRate, 1e-9);
        Assert.Equal(0.9 * Math.Exp(-0.02 * 3), dcao.Last.Momentum, 1e-9);
        double[] w0 = [1, -1, 0.5];
        var got = p.Data.ToArray<double>();
        for (int i = 0; i < 3; i++) Assert.Equal(w0[i] * (1 - eta * wd) - eta * g[i], got[i], 1e-9);

        var rel = new Dcao(0.1, 0.9, 0, alpha: 1, beta: 1, relative: true, k: 3, lanczosIterations: 3);
        rel.Step(q.Step(0, new Parameter(V(1, -1, 0.5))));
        Assert.Equal(0.1 * Math.Exp(-1), rel.Last.LearningRate, 1e-9);
        Assert.Equal(0.9 * Math.Exp(-1), rel.Last.Momentum, 1e-9);
    }

    [Fact]
    public void Hidlr_on_a_separable_quadratic_picks_one_over_lambda_per_group()
    {
        double[] lambda = [8, 2, 0.5];
        var ps = lambda.Select(_ => new Parameter(V(1, -2))).ToArray();
        NdArray Lam(int k) => V(lambda[k], lambda[k]);
        var full = new HessianOperator(p => Enumerable.Range(0, 3).Select(k => (p[k] * p[k] * (Tensor)Lam(k)).Sum() * 0.5).Aggregate((a, b) => a + b),
            ps.Select(p => p.Data).ToArray());
        var opt = new HiDlr(0.3, [0, 1, 2], refreshEvery: 1);
        for (int t = 0; t < 120; t++)
        {
            var grads = Enumerable.Range(0, 3).Select(k => ps[k].Data * Lam(k)).ToArray();
            opt.Step(Context(t, ps, grads, curvature: () => full));
            if (t == 0)
                for (int k = 0; k < 3; k++) Assert.Equal(1 / lambda[k], opt.LastRatios[k], 1e-12);
        }
        var rates = opt.GroupRates;
        // The smoothed rates approach the exact ratio by 10 % per refresh (GeN smoothing): within 1 % after 120.
        for (int k = 0; k < 3; k++) Assert.Equal(1 / lambda[k], rates[k], 1e-2 / lambda[k]);
    }

    [Fact]
    public void Groups_by_layer_follow_the_parameter_names()
    {
        Assert.Equal(new[] { 0, 0, 1, 1, 2 }, HiDlr.ByLayer(["1.weight", "1.bias", "3.weight", "3.bias", "fc.weight"]));
    }

    [Fact]
    public void Groups_by_block_cut_the_module_path_to_its_first_parts()
    {
        string[] names = ["conv1.weight", "bn1.weight", "bn1.bias", "layer1.0.conv1.weight", "layer1.0.bn2.bias",
            "layer2.0.downsample.0.weight", "layer2.0.downsample.1.weight", "layer2.1.conv1.weight", "fc.weight", "fc.bias"];
        Assert.Equal(new[] { 0, 1, 1, 2, 2, 3, 3, 4, 5, 5 }, HiDlr.ByPrefix(names, 2));
        Assert.Equal(new[] { 0, 1, 1, 2, 2, 3, 3, 3, 4, 4 }, HiDlr.ByPrefix(names, 1));
        Assert.Equal(HiDlr.ByLayer(names), HiDlr.ByPrefix(names, 9));
    }

    [Fact]
    public void State_round_trips_so_a_resumed_run_takes_the_same_steps()
    {
        var q = new Quadratic([3, 1, 0.5]);
        IOptimizer[] Make() => [new Momentum(0.1, 0.9), new Adam(0.05), new L4(), new Caeo(0.3, 0.5, probeEvery: 2, momentum: 0.5),
            new Caeo(0.05, 0.5, probeEvery: 2, adaptive: true), new Dcao(0.1, k: 3, lanczosIterations: 3)];
        var first = Make();
        var second = Make();
        for (int o = 0; o < first.Length; o++)
        {
            var a = new Parameter(V(1, -1, 2));
            for (int t = 0; t < 3; t++) first[o].Step(q.Step(t, a));
            var b = new Parameter(a.Data);
            second[o].LoadState(first[o].State().ToDictionary(s => s.Name, s => s.Value));
            for (int t = 3; t < 6; t++) { first[o].Step(q.Step(t, a)); second[o].Step(q.Step(t, b)); }
            Assert.Equal(a.Data.ToArray<double>(), b.Data.ToArray<double>());
        }
    }
}
