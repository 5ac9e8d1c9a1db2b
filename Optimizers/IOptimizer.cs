using Curvature.Engine;
using Curvature.Models;

namespace Curvature.Optimizers;

/// <summary>
/// An update rule: given the parameters and their gradients at the current step, replace the parameter values.
/// The learning rate is public so schedules and curvature-aware rules can set it between steps.
/// </summary>
public interface IOptimizer
{
    /// <summary>A short name (sgd, momentum, …) for logs and reports.</summary>
    string Name { get; }

    /// <summary>The step size η used by the next <see cref="Step"/>.</summary>
    double LearningRate { get; set; }

    /// <summary>Applies one update; <paramref name="gradients"/>[i] belongs to <paramref name="parameters"/>[i].</summary>
    void Step(IReadOnlyList<Parameter> parameters, IReadOnlyList<NdArray> gradients);
}
