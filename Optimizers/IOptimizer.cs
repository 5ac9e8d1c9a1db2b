using Curvature.Engine;
using Curvature.Models;
using Curvature.Spectral;

namespace Curvature.Optimizers;

/// <summary>What an optimizer sees at one step.</summary>
public sealed class StepContext
{
    /// <summary>Index of this update, from 0.</summary>
    public required int Step { get; init; }

    /// <summary>The loss at the current parameters, on the batch the gradients come from (L4 needs it).</summary>
    public required double Loss { get; init; }

    /// <summary>The parameters to update, in a fixed order.</summary>
    public required IReadOnlyList<Parameter> Parameters { get; init; }

    /// <summary>∇L for each parameter.</summary>
    public required IReadOnlyList<NdArray> Gradients { get; init; }

    /// <summary>
    /// The Hessian of the loss on the probe batch at the current parameters, as an operator on the flattened
    /// parameters (exact HVPs); null when no curvature is available. Curvature-aware optimizers require it on
    /// the steps where they probe.
    /// </summary>
    public Func<ILinearOperator>? Curvature { get; init; }

    /// <summary>
    /// The Hessian of the loss on this step's own minibatch (the batch the gradients come from), or null. Rules
    /// that pair a curvature with the gradient along one direction (Hi-DLR's b_k/A_kk) need the same batch for both.
    /// </summary>
    public Func<ILinearOperator>? MinibatchCurvature { get; init; }

    /// <summary>
    /// K-FAC factors of the Fisher on the probe batch at the current parameters, or null. The arguments: whether to
    /// correct the eigenvalues (EKFAC), and an earlier EKFAC inverse whose eigenbases to keep (only the scales re-estimated), or null.
    /// </summary>
    public Func<bool, KfacPreconditioner?, KroneckerFactoredCurvature>? Kfac { get; init; }

    /// <summary>
    /// Probes between audits (0: never). On every <c>AuditEvery</c>-th probe a curvature-aware rule also runs
    /// Lanczos to convergence on the operator its estimate is of (<see cref="SharpnessAudit"/>) and logs that
    /// λmax beside its estimate, so a cheap estimator is checked against the eigenvalue it stands for.
    /// </summary>
    public int AuditEvery { get; init; }

    /// <summary>
    /// The same Hessian as <see cref="Curvature"/> (same batch, same mode), whose products the caller accounts as
    /// audit rather than probe cost; null: audits use <see cref="Curvature"/>.
    /// </summary>
    public Func<ILinearOperator>? AuditCurvature { get; init; }
}

/// <summary>The hyper-parameters an optimizer used on its last step, for the per-step log.</summary>
/// <param name="LearningRate">η.</param>
/// <param name="Momentum">μ (0 when the rule has none).</param>
/// <param name="WeightDecay">λ (0 when the rule has none).</param>
/// <param name="Sharpness">The curvature estimate of a probe made on that step, or null.</param>
/// <param name="AuditSharpness">A converged Lanczos λmax of the operator that estimate is of, when the probe was audited; else null.</param>
public sealed record StepLog(double LearningRate, double Momentum, double WeightDecay, double? Sharpness, double? AuditSharpness = null);

/// <summary>
/// An update rule: given the context of a step, replace the parameter values. Its state (moment estimates,
/// step counts, curvature estimates) round-trips through <see cref="State"/> and <see cref="LoadState"/> so a
/// checkpoint resumes with the same numbers.
/// </summary>
public interface IOptimizer
{
    /// <summary>A short name (sgd, momentum, adam, …) for logs and reports.</summary>
    string Name { get; }

    /// <summary>The hyper-parameters of the last step.</summary>
    StepLog Last { get; }

    /// <summary>Applies one update.</summary>
    void Step(StepContext context);

    /// <summary>The state to checkpoint, by name.</summary>
    IReadOnlyList<(string Name, NdArray Value)> State();

    /// <summary>Restores state written by <see cref="State"/>; throws naming what is missing or mis-shaped.</summary>
    void LoadState(IReadOnlyDictionary<string, NdArray> state);
}

/// <summary>An update rule whose learning rate a schedule may set before each step (SGD, momentum, Adam).</summary>
public interface IHasLearningRate : IOptimizer
{
    /// <summary>η for the next step.</summary>
    double LearningRate { get; set; }
}
