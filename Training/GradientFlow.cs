using Curvature.Engine;
using Curvature.Models;
using Curvature.Spectral;

namespace Curvature.Training;

/// <summary>A point of a gradient-flow trajectory: the flow at time <paramref name="Time"/>.</summary>
/// <param name="Time">t, in the units of η·steps (gradient descent at rate η reaches time η·k after k steps).</param>
/// <param name="Weights">w(t), flattened in <see cref="Module.Parameters"/> order.</param>
/// <param name="Loss">L(w(t)).</param>
/// <param name="Sharpness">λmax of ∇²L(w(t)), by Lanczos warm-started from the previous point's top eigenvector.</param>
/// <param name="TopEigenvector">Its unit eigenvector, sign-aligned with the previous point's.</param>
/// <param name="Gradients">Gradient evaluations spent since t = 0 (four per Runge–Kutta step).</param>
/// <param name="Steps">Runge–Kutta steps taken since t = 0.</param>
public sealed record FlowPoint(double Time, NdArray Weights, double Loss, double Sharpness, NdArray TopEigenvector, int Gradients, int Steps);

/// <summary>
/// Gradient flow dw/dt = −∇L(w), the small-step limit of gradient descent, integrated by the classical fourth-order
/// Runge–Kutta method with the step h = min(α/λmax, Δmax) of Cohen et al. 2021 (§3, Appendix "gradient flow"): λmax is
/// re-measured at every tick, and RK4 is stable on the Hessian's stiffest direction while h·λmax ≤ 2.78 (its
/// stability interval on the negative real axis), so α = 1 follows the flow closely at any sharpness. Each tick is
/// split into equal steps no longer than that, so the trajectory is sampled at exactly t = tick·k.
/// </summary>
public sealed class GradientFlow
{
    /// <summary>The loss and its gradient at a flat weight vector.</summary>
    public required Func<NdArray, (double Loss, NdArray Gradient)> LossAndGradient { get; init; }
    /// <summary>The Hessian at a flat weight vector (its top eigenvalue sets the step).</summary>
    public required Func<NdArray, ILinearOperator> Hessian { get; init; }
    /// <summary>α of the step rule h = min(α/λmax, Δmax).</summary>
    public double Alpha { get; init; } = 1;
    /// <summary>Δmax of the step rule: the longest step, taken where the loss is flat.</summary>
    public required double MaxStep { get; init; }
    /// <summary>Lanczos iterations per sharpness measurement.</summary>
    public int LanczosIterations { get; init; } = 20;
    /// <summary>Relative residual at which a sharpness measurement stops early.</summary>
    public double LanczosTolerance { get; init; } = 1e-4;
    /// <summary>Seed of the first measurement's random start.</summary>
    public ulong Seed { get; init; }

    /// <summary>
    /// The flow from <paramref name="start"/> at t = 0, tick, 2·tick, …, ticks·tick (ticks + 1 points, lazily: each
    /// is computed when enumerated). Stops early, after yielding it, at a point whose loss is not finite.
    /// </summary>
    public IEnumerable<FlowPoint> Run(NdArray start, double tick, int ticks)
    {
        if (!(tick > 0 && double.IsFinite(tick))) throw new ArgumentOutOfRangeException(nameof(tick), tick, "the tick must be a positive time.");
        if (ticks < 0) throw new ArgumentOutOfRangeException(nameof(ticks), ticks, "the number of ticks must not be negative.");
        if (!(Alpha > 0 && double.IsFinite(Alpha))) throw new InvalidOperationException($"α must be positive, got {Alpha}.");
        if (!(MaxStep > 0 && double.IsFinite(MaxStep))) throw new InvalidOperationException($"Δmax must be positive, got {MaxStep}.");
        var w = start.Copy();
        NdArray? top = null;
        int gradients = 0, steps = 0;
        var (loss, gradient) = LossAndGradient(w);
        gradients++;
        for (int k = 0; ; k++)
        {
            var r = Lanczos.Run(Hessian(w), LanczosIterations, k: 1, tolerance: LanczosTolerance, start: top, rng: new RandomGenerator(Seed + 1), vectors: true);
            var v = r.Vectors![0];
            if (top is not null && v.Dot(top) < 0) v = -v;
            top = v;
            double sharpness = r.Values[0];
            yield return new FlowPoint(k * tick, w, loss, sharpness, v, gradients, steps);
            if (k == ticks || !double.IsFinite(loss)) yield break;

            // Equal steps of tick/n ≤ min(α/λmax, Δmax), so the trajectory lands on the tick.
            double h = sharpness > 0 ? Math.Min(Alpha / sharpness, MaxStep) : MaxStep;
            int n = (int)Math.Ceiling(tick / h * (1 - 1e-12));
            for (int i = 0; i < n && double.IsFinite(loss); i++)
            {
                (w, loss, gradient) = RungeKutta4(w, gradient, tick / n);
                gradients += 4;
                steps++;
            }
        }
    }

    /// <summary>
    /// One classical RK4 step of w' = −g(w): k₁ = −g(w), k₂ = −g(w + h/2·k₁), k₃ = −g(w + h/2·k₂), k₄ = −g(w + h·k₃),
    /// w + h/6·(k₁ + 2k₂ + 2k₃ + k₄). <paramref name="g1"/> is g(w), already known; the returned loss and gradient are
    /// those at the new point (the next step's k₁), so each step costs four gradient evaluations.
    /// </summary>
    private (NdArray W, double Loss, NdArray Gradient) RungeKutta4(NdArray w, NdArray g1, double h)
    {
        var g2 = LossAndGradient(w - g1 * (h / 2)).Gradient;
        var g3 = LossAndGradient(w - g2 * (h / 2)).Gradient;
        var g4 = LossAndGradient(w - g3 * h).Gradient;
        var next = w - NdArray.LinearCombination([g1, g2, g3, g4], [h / 6, h / 3, h / 3, h / 6]);
        var (loss, g) = LossAndGradient(next);
        return (next, loss, g);
    }

    /// <summary>
    /// The flow of a model's loss on a fixed batch (training mode, like the steps it is compared with): weights are
    /// the flattened parameters; <paramref name="model"/>'s parameters are left at <paramref name="model"/>'s values.
    /// Over several <paramref name="ranks"/> each takes its shard of the batch and the loss, gradient and Hessian
    /// products are share-weighted all-reduces (BatchNorm synchronized when <paramref name="syncBatchNorm"/>), so the
    /// replicated RK4 steps and their step-size rule see the same numbers on every rank.
    /// </summary>
    public static GradientFlow Of(Module model, string loss, NdArray inputs, NdArray labels, double maxStep, double alpha = 1, int lanczosIterations = 20, ulong seed = 0,
        Distributed.ICommunicator? ranks = null, bool syncBatchNorm = false)
    {
        ranks ??= Distributed.SingleProcess.Instance;
        var shapes = model.Parameters().Select(p => p.Shape).ToArray();
        var (x, share) = Distributed.DataParallel.ShardRows(inputs, ranks);
        var f = Models.Loss.Function(model, loss, x, Distributed.DataParallel.ShardRows(labels, ranks).Rows, training: true);
        return new GradientFlow
        {
            LossAndGradient = w =>
            {
                (double Loss, NdArray Gradient) local;
                using (Distributed.DataParallel.SynchronizeBatchNorm(ranks, share, syncBatchNorm))
                    local = new HessianOperator(f, Vectors.Unflatten(w, shapes)).LossAndGradient();
                return ranks.Size == 1 ? local
                    : (Distributed.DataParallel.WeightedSum(ranks, local.Loss, share), Distributed.DataParallel.WeightedSum(ranks, [local.Gradient], share)[0]);
            },
            Hessian = w => ranks.Size == 1 ? new HessianOperator(f, Vectors.Unflatten(w, shapes))
                : new Distributed.DistributedOperator(new HessianOperator(f, Vectors.Unflatten(w, shapes)), share, ranks, syncBatchNorm),
            MaxStep = maxStep, Alpha = alpha, LanczosIterations = lanczosIterations, Seed = seed,
        };
    }
}
