using Curvature.Optimizers;

namespace Curvature.Lab;

/// <summary>The optimisers the comparison verbs accept, with the defaults they use.</summary>
public static class OptimizerFactory
{
    /// <summary>Settings shared by the curvature-aware rules.</summary>
    public sealed record Curvature(int ProbeEvery = 10, double Delta = 0.5, CurvatureEstimator Estimator = CurvatureEstimator.Power);

    /// <summary>Valid names and their defaults (what the report prints).</summary>
    public static readonly IReadOnlyDictionary<string, string> Defaults = new Dictionary<string, string>
    {
        ["sgd"] = "η 0.1",
        ["momentum"] = "η 0.05, μ 0.9",
        ["nesterov"] = "η 0.05, μ 0.9",
        ["adam"] = "η 1e-3",
        ["adamw"] = "η 1e-3, λ 0.01",
        ["l4"] = "Adam directions (ε 1e-4), α 0.15, γ 0.9, τ 1000",
        ["hidlr"] = "SGD directions, initial η 0.1, a group per layer, refreshed every T",
        ["hidlr-block"] = "SGD directions, initial η 0.1, a group per block (module path cut to two parts, e.g. layer2.0), refreshed every T",
        ["dcao"] = "relative mode, η₀ 0.1, μ₀ 0.9, λ₀ 1e-4, α = β = c = 0.5, k 5, 20 Lanczos iterations every T",
        ["caeo"] = "GD, η_base 0.5, η = min(η_base, (2 − δ)/λmax), λmax every T (power iteration to 1e-2 at the first probe, then one product per probe continuing it)",
        ["caeo-adam"] = "Adam, η_base 3e-3, η = min(η_base, ((2 + 2β₁)/(1 − β₁) − δ)/λmax(P⁻¹H)), preconditioned sharpness every T",
        ["caeo-momentum"] = "μ 0.9, η_base 0.5, η = min(η_base, (2 + 2μ − δ)/λmax), λmax every T (power iteration to 1e-2 at the first probe, then one product per probe continuing it)",
    };

    /// <summary>A fresh optimiser of the named kind; an unknown name lists the valid ones.</summary>
    public static IOptimizer Create(string name, Curvature curvature, IReadOnlyList<string> parameterNames, ulong seed) => name switch
    {
        "sgd" => new GradientDescent(0.1),
        "momentum" => new Momentum(0.05, 0.9),
        "nesterov" => new Momentum(0.05, 0.9, nesterov: true),
        "adam" => new Adam(1e-3),
        "adamw" => new Adam(1e-3, weightDecay: 0.01, decoupled: true),
        "l4" => new L4("adam"),
        "hidlr" => new HiDlr(0.1, HiDlr.ByLayer(parameterNames), curvature.ProbeEvery),
        "hidlr-block" => new HiDlr(0.1, HiDlr.ByPrefix(parameterNames, 2), curvature.ProbeEvery),
        "dcao" => new Dcao(0.1, 0.9, 1e-4, 0.5, 0.5, 0.5, curvature.ProbeEvery, relative: true, seed: seed),
        "caeo" => new Caeo(0.5, curvature.Delta, curvature.ProbeEvery, curvature.Estimator, powerTolerance: 1e-2, seed: seed),
        "caeo-adam" => new Caeo(3e-3, curvature.Delta, curvature.ProbeEvery, curvature.Estimator, powerTolerance: 1e-2, seed: seed, adaptive: true),
        "caeo-momentum" => new Caeo(0.5, curvature.Delta, curvature.ProbeEvery, curvature.Estimator, momentum: 0.9, powerTolerance: 1e-2, seed: seed),
        _ => throw new LabException($"unknown optimizer '{name}'; valid: {string.Join(", ", Defaults.Keys)}."),
    };

    /// <summary>Parses a comma-separated list, checking every name.</summary>
    public static string[] Parse(string list)
    {
        var names = list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        foreach (var n in names)
            if (!Defaults.ContainsKey(n)) throw new LabException($"unknown optimizer '{n}'; valid: {string.Join(", ", Defaults.Keys)}.");
        return names.Length > 0 ? names : throw new LabException("no optimizer given.");
    }

    /// <summary>The estimator named on the command line (power, hutchinson, kfac).</summary>
    public static CurvatureEstimator Estimator(string name) => name switch
    {
        "power" => CurvatureEstimator.Power,
        "hutchinson" => CurvatureEstimator.Hutchinson,
        "kfac" => CurvatureEstimator.Kfac,
        _ => throw new LabException($"estimator '{name}' is not one of power, hutchinson, kfac."),
    };

}
