using Curvature.Engine;
using Curvature.Models;
using Curvature.Optimizers;
using Curvature.Spectral;
using Curvature.Training;
using FsCheck;
using FsCheck.Fluent;

namespace Curvature.Tests.Training;

/// <summary>Gradient flow by RK4 with Cohen et al.'s step min(α/λmax, Δmax): the scheme on quadratics, where the flow is exp(−At)w₀, and on a model's loss.</summary>
[Collection(ThreadSettings.Name)]
public class GradientFlowTests
{
    /// <summary>L(w) = ½ Σ aᵢwᵢ² with a diagonal Hessian diag(a).</summary>
    private static GradientFlow Quadratic(double[] a, double alpha, double maxStep)
    {
        var diag = NdArray.FromArray(a, new Shape(a.Length));
        var matrix = NdArray.FromArray(Enumerable.Range(0, a.Length * a.Length).Select(i => i / a.Length == i % a.Length ? a[i / a.Length] : 0.0).ToArray(), new Shape(a.Length, a.Length));
        return new GradientFlow
        {
            LossAndGradient = w => (0.5 * (w * w).Dot(diag), w * diag),
            Hessian = _ => new DenseOperator(matrix),
            Alpha = alpha, MaxStep = maxStep, LanczosIterations = a.Length, LanczosTolerance = 0,   // exact on n iterations
        };
    }

    /// <summary>RK4's amplification of one step on w' = −a·w: the degree-4 Taylor polynomial of e^z at z = −a·h.</summary>
    private static double Amplification(double z) => 1 + z + z * z / 2 + z * z * z / 6 + z * z * z * z / 24;

    [Fact]
    public void On_a_quadratic_each_tick_is_n_equal_rk4_steps_no_longer_than_alpha_over_lambda_max_and_follows_the_exact_flow()
    {
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(25), Prop.ForAll(Gen.Choose(0, 100_000).ToArbitrary(), seed =>
        {
            var rng = new RandomGenerator((ulong)seed);
            var a = rng.Uniform(new Shape(6), 0.1, 40, DType.Float64).ToArray<double>();
            var w0 = rng.Normal(new Shape(6), dtype: DType.Float64);
            double lambda = a.Max(), tick = 0.3, alpha = 0.25, maxStep = 0.05;
            var points = Quadratic(a, alpha, maxStep).Run(w0, tick, ticks: 3).ToList();
            Assert.Equal(4, points.Count);
            int n = (int)Math.Ceiling(tick / Math.Min(alpha / lambda, maxStep) - 1e-9);
            var start = w0.ToArray<double>();
            for (int k = 0; k < points.Count; k++)
            {
                var p = points[k];
                Assert.Equal(k * tick, p.Time, 12);
                Assert.Equal(lambda, p.Sharpness, 1e-8 * lambda);
                Assert.Equal(k * n, p.Steps);
                Assert.Equal(1 + 4 * k * n, p.Gradients);
                var w = p.Weights.ToArray<double>();
                for (int i = 0; i < a.Length; i++)
                {
                    // The scheme exactly: R(−aᵢh)^(kn) with h = tick/n; and the flow itself, e^(−aᵢt), to RK4's accuracy.
                    Assert.Equal(start[i] * Math.Pow(Amplification(-a[i] * tick / n), k * n), w[i], 1e-12);
                    Assert.Equal(start[i] * Math.Exp(-a[i] * k * tick), w[i], 2e-4);
                }
                Assert.Equal(0.5 * w.Select((wi, i) => a[i] * wi * wi).Sum(), p.Loss, 1e-12);
            }
        }));
    }

    [Fact]
    public void The_step_is_capped_by_max_step_where_the_loss_is_flat()
    {
        var points = Quadratic([1e-3, 2e-3], alpha: 1, maxStep: 0.1).Run(NdArray.FromArray(new[] { 1.0, 1.0 }, new Shape(2)), tick: 1, ticks: 2).ToList();
        Assert.Equal(20, points[^1].Steps);            // 1/0.1 = 10 steps a tick, not one step of α/λ = 500
    }

    [Fact]
    public void Bad_settings_are_refused_by_name()
    {
        var flow = Quadratic([1.0], alpha: 1, maxStep: 0.1);
        var w = NdArray.FromArray(new[] { 1.0 }, new Shape(1));
        Assert.Throws<ArgumentOutOfRangeException>(() => flow.Run(w, tick: 0, ticks: 1).ToList());
        Assert.Throws<ArgumentOutOfRangeException>(() => flow.Run(w, tick: 1, ticks: -1).ToList());
        var noStep = Quadratic([1.0], alpha: 1, maxStep: 0);
        Assert.Contains("Δmax", Assert.Throws<InvalidOperationException>(() => noStep.Run(w, 1, 1).ToList()).Message);
    }

    [Fact]
    public void On_a_network_the_loss_never_rises_and_gradient_descent_with_a_small_rate_tracks_the_flow()
    {
        // dL/dt = −‖∇L‖² ≤ 0 along the flow; GD at rate η is its Euler discretisation, O(η) away at time t = η·steps.
        var rng = new RandomGenerator(5);
        var x = rng.Normal(new Shape(32, 784));
        var y = NdArray.FromArray(Enumerable.Range(0, 32).Select(i => (long)(i % 10)).ToArray());
        var model = Mlp.Create(new RandomGenerator(3), width: 16);
        var w0 = Vectors.Flatten(ParameterVector.Of(model));
        var flow = GradientFlow.Of(model, "mse", x, y, maxStep: 0.01, lanczosIterations: 10).Run(w0, tick: 0.25, ticks: 4).ToList();
        for (int k = 1; k < flow.Count; k++) Assert.True(flow[k].Loss <= flow[k - 1].Loss + 1e-6, $"loss rose at t = {flow[k].Time}: {flow[k - 1].Loss} → {flow[k].Loss}");
        Assert.True(flow[^1].Loss < 0.9 * flow[0].Loss, $"the flow barely moved: {flow[0].Loss} → {flow[^1].Loss}");
        Assert.Equal(ParameterVector.Of(model).Sum(p => p.Size), flow[^1].Weights.Size);
        Assert.Equal(w0.ToArray<float>(), Vectors.Flatten(ParameterVector.Of(model)).ToArray<float>());   // the model is left as it was

        var result = new Trainer
        {
            Model = model, Optimizer = new GradientDescent(0.001), Batches = new FullBatchStream(x, y), Steps = 1001, Loss = "mse",
        }.Run();
        double gdLoss = result.Losses[1000];                                                  // at w₁₀₀₀, t = 1
        Assert.True(Math.Abs(gdLoss - flow[^1].Loss) < 0.02 * flow[^1].Loss, $"GD at η 0.001 reached {gdLoss}, the flow {flow[^1].Loss} at t = 1");
    }
}
