using System.Globalization;
using Curvature.Optimizers;

namespace Curvature.Training;

/// <summary>
/// One hyperparameter of an optimizer: its key in a spec (<c>lr</c>, <c>mu</c>, …), the symbol reports use,
/// what it means, its default and its valid range (or, for a choice, its valid values).
/// </summary>
/// <param name="Key">The key in a spec such as <c>caeo:lr=0.5</c>.</param>
/// <param name="Symbol">The symbol reports print (η, μ, δ, …).</param>
/// <param name="Description">One line: what it is.</param>
/// <param name="Default">The default value (for a choice: the index of the default in <paramref name="Choices"/>).</param>
/// <param name="Min">The smallest valid value.</param>
/// <param name="Max">The largest valid value.</param>
/// <param name="MinExclusive">True when <paramref name="Min"/> itself is not valid.</param>
/// <param name="MaxExclusive">True when <paramref name="Max"/> itself is not valid.</param>
/// <param name="Integer">True when only whole numbers are valid.</param>
/// <param name="Choices">The valid words, for a choice; null for a number.</param>
public sealed record Hyperparameter(string Key, string Symbol, string Description, double Default, double Min = 0, double Max = double.PositiveInfinity,
    bool MinExclusive = false, bool MaxExclusive = false, bool Integer = false, string[]? Choices = null)
{
    /// <summary>A number that must be positive.</summary>
    public static Hyperparameter Positive(string key, string symbol, string description, double value) => new(key, symbol, description, value, MinExclusive: true);

    /// <summary>A number in [0, ∞).</summary>
    public static Hyperparameter NonNegative(string key, string symbol, string description, double value) => new(key, symbol, description, value);

    /// <summary>A number in [0, 1).</summary>
    public static Hyperparameter Fraction(string key, string symbol, string description, double value) => new(key, symbol, description, value, 0, 1, MaxExclusive: true);

    /// <summary>A whole number of at least <paramref name="min"/>.</summary>
    public static Hyperparameter Count(string key, string symbol, string description, int value, int min = 1) => new(key, symbol, description, value, min, int.MaxValue, Integer: true);

    /// <summary>One of a set of words; the first is the default.</summary>
    public static Hyperparameter Choice(string key, string symbol, string description, params string[] choices) => new(key, symbol, description, 0, Choices: choices);

    /// <summary>The valid values in words, for error messages and help.</summary>
    public string Range => Choices is { } c ? string.Join("|", c)
        : Integer ? $"an integer ≥ {Min.ToString(CultureInfo.InvariantCulture)}"
        : $"a number in {(MinExclusive ? "(" : "[")}{F(Min)}, {(double.IsPositiveInfinity(Max) ? "∞)" : F(Max) + (MaxExclusive ? ")" : "]"))}";

    /// <summary>The default as a spec would write it.</summary>
    public string DefaultText => Choices is { } c ? c[(int)Default] : F(Default);

    /// <summary>
    /// Parses a value given for this key and checks its range; the error names the optimizer, the key, the value and
    /// what is valid. Choices come back as their index.
    /// </summary>
    public double Parse(string optimizer, string text)
    {
        if (Choices is { } c)
        {
            int i = Array.IndexOf(c, text);
            return i >= 0 ? i : throw new OptimizerSpecException($"{optimizer}: {Key}={text} is not one of {Range}.");
        }
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) || !double.IsFinite(v))
            throw new OptimizerSpecException($"{optimizer}: {Key}={text} is not a number; expected {Range}.");
        bool ok = (MinExclusive ? v > Min : v >= Min) && (MaxExclusive ? v < Max : v <= Max) && (!Integer || v == Math.Floor(v));
        return ok ? v : throw new OptimizerSpecException($"{optimizer}: {Key}={text} is out of range; expected {Range}.");
    }

    /// <summary>A value as reports print it.</summary>
    public string Format(double value) => Choices is { } c ? c[(int)value] : F(value);

    private static string F(double v) => v.ToString("G4", CultureInfo.InvariantCulture);
}

/// <summary>A malformed optimizer spec: an unknown name or key, a value that does not parse or is out of range.</summary>
public sealed class OptimizerSpecException(string message) : ArgumentException(message);

/// <summary>The resolved hyperparameters of one optimizer, and what the optimizer is built for.</summary>
public sealed class OptimizerArguments
{
    private readonly IReadOnlyDictionary<string, double> values;

    internal OptimizerArguments(IReadOnlyDictionary<string, double> values, IReadOnlyList<string> parameterNames, ulong seed)
    {
        this.values = values;
        ParameterNames = parameterNames;
        Seed = seed;
    }

    /// <summary>The model's parameter names, in order (Hi-DLR groups by them).</summary>
    public IReadOnlyList<string> ParameterNames { get; }
    /// <summary>The run's seed (the optimizer's own random stream).</summary>
    public ulong Seed { get; }

    /// <summary>A number.</summary>
    public double this[string key] => values[key];
    /// <summary>A whole number.</summary>
    public int Int(string key) => (int)values[key];
    /// <summary>A choice, as the index of its word.</summary>
    public int Choice(string key) => (int)values[key];
}

/// <summary>One optimizer of the registry: its name, what it is, its hyperparameters and how to build it.</summary>
/// <param name="Name">The name in a spec.</param>
/// <param name="Summary">One line for help and reports.</param>
/// <param name="Proposed">True for the rules under test (CAEO, DCAO); false for the baselines they are compared against.</param>
/// <param name="Parameters">Its hyperparameters, in the order reports print them.</param>
/// <param name="Build">Builds a fresh optimizer from resolved arguments.</param>
public sealed record OptimizerEntry(string Name, string Summary, bool Proposed, Hyperparameter[] Parameters, Func<OptimizerArguments, IOptimizer> Build)
{
    /// <summary>The hyperparameter with this key, or null.</summary>
    public Hyperparameter? Find(string key) => Parameters.FirstOrDefault(p => p.Key == key);

    /// <summary>Whether the rule logs a λmax estimate of its own (CAEO's estimate, DCAO's ρ) in the sharpness column; others can be given a light probe.</summary>
    public bool LogsSharpness { get; init; }
}

/// <summary>
/// An optimizer with some hyperparameters set: <c>name[:key=value]…</c>, e.g. <c>caeo:lr=0.5:delta=0.1</c>. Keys not
/// given take the defaults a verb passes (its <c>--probe-every</c>, <c>--delta</c>, <c>--estimator</c>), then the
/// registry's.
/// </summary>
public sealed class OptimizerSpec
{
    private OptimizerSpec(OptimizerEntry entry, IReadOnlyDictionary<string, double> given, string text)
    {
        Entry = entry;
        Given = given;
        Text = text;
    }

    /// <summary>The registry entry.</summary>
    public OptimizerEntry Entry { get; }
    /// <summary>The optimizer's name.</summary>
    public string Name => Entry.Name;
    /// <summary>The hyperparameters the spec sets, by key.</summary>
    public IReadOnlyDictionary<string, double> Given { get; }
    /// <summary>The spec in canonical form (keys in the entry's order): the run's label.</summary>
    public string Text { get; }

    /// <summary>Parses one spec; an unknown name or key, or a bad value, throws naming it and what is valid.</summary>
    public static OptimizerSpec Parse(string text)
    {
        var parts = (text ?? "").Trim().Split(':', StringSplitOptions.TrimEntries);
        var entry = OptimizerRegistry.Find(parts[0])
            ?? throw new OptimizerSpecException($"unknown optimizer '{parts[0]}'; valid: {string.Join(", ", OptimizerRegistry.Names)}.");
        var given = new Dictionary<string, double>();
        foreach (var part in parts.Skip(1))
        {
            int eq = part.IndexOf('=');
            if (eq <= 0) throw new OptimizerSpecException($"{entry.Name}: '{part}' is not key=value; keys: {string.Join(", ", entry.Parameters.Select(p => p.Key))}.");
            string key = part[..eq].Trim(), value = part[(eq + 1)..].Trim();
            var p = entry.Find(key)
                ?? throw new OptimizerSpecException($"{entry.Name}: unknown key '{key}'; valid: {string.Join(", ", entry.Parameters.Select(q => q.Key))}.");
            if (given.ContainsKey(key)) throw new OptimizerSpecException($"{entry.Name}: {key} is given twice.");
            given[key] = p.Parse(entry.Name, value);
        }
        return new OptimizerSpec(entry, given, Canonical(entry, given));
    }

    /// <summary>A comma-separated list of specs (<c>sgd:lr=0.1,caeo:delta=0.5</c>); at least one.</summary>
    public static OptimizerSpec[] ParseList(string list)
    {
        var specs = list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(Parse).ToArray();
        if (specs.Length == 0) throw new OptimizerSpecException("no optimizer given.");
        var twice = specs.GroupBy(s => s.Text).FirstOrDefault(g => g.Count() > 1);
        if (twice is not null) throw new OptimizerSpecException($"'{twice.Key}' is given twice.");
        return specs;
    }

    /// <summary>This spec with <paramref name="key"/> set to <paramref name="value"/> (a grid point).</summary>
    public OptimizerSpec With(string key, double value)
    {
        if (Entry.Find(key) is null) throw new OptimizerSpecException($"{Name}: unknown key '{key}'; valid: {string.Join(", ", Entry.Parameters.Select(q => q.Key))}.");
        var given = new Dictionary<string, double>(Given) { [key] = value };
        return new OptimizerSpec(Entry, given, Canonical(Entry, given));
    }

    /// <summary>Every hyperparameter's value: the spec's, else <paramref name="defaults"/>' (where the entry has the key), else the registry's.</summary>
    public IReadOnlyDictionary<string, double> Resolve(IReadOnlyDictionary<string, double>? defaults = null) =>
        Entry.Parameters.ToDictionary(p => p.Key, p => Given.TryGetValue(p.Key, out var v) ? v : defaults is not null && defaults.TryGetValue(p.Key, out var d) ? d : p.Default);

    /// <summary>A fresh optimizer for a model with these parameter names and a run seed.</summary>
    public IOptimizer Create(IReadOnlyList<string> parameterNames, ulong seed, IReadOnlyDictionary<string, double>? defaults = null)
    {
        try { return Entry.Build(new OptimizerArguments(Resolve(defaults), parameterNames, seed)); }
        catch (ArgumentException e) when (e is not OptimizerSpecException)
        {
            throw new OptimizerSpecException($"{Text}: {e.Message.Split(" (Parameter")[0]}");
        }
    }

    /// <summary>The resolved hyperparameters in words ("η 0.5, δ 0.5, T 10, estimator power").</summary>
    public string Describe(IReadOnlyDictionary<string, double>? defaults = null)
    {
        var values = Resolve(defaults);
        return $"{Entry.Summary}; " + string.Join(", ", Entry.Parameters.Select(p => $"{p.Symbol} {p.Format(values[p.Key])}"));
    }

    private static string Canonical(OptimizerEntry entry, IReadOnlyDictionary<string, double> given) =>
        entry.Name + string.Concat(entry.Parameters.Where(p => given.ContainsKey(p.Key)).Select(p => $":{p.Key}={p.Format(given[p.Key])}"));

    /// <inheritdoc/>
    public override string ToString() => Text;
}

/// <summary>
/// The one registry of optimizers every verb uses: name → hyperparameters (typed, with defaults and their
/// meaning) → a factory. Help texts, reports, spec parsing and sweeps are all generated from the table below.
/// </summary>
public static class OptimizerRegistry
{
    private static Hyperparameter Lr(double value, string symbol = "η", string what = "learning rate") => Hyperparameter.Positive("lr", symbol, what, value);
    private static Hyperparameter Mu(double value, string symbol = "μ") => Hyperparameter.Fraction("mu", symbol, "heavy-ball momentum", value);
    private static Hyperparameter Wd(double value, string what = "weight decay (L2, added to the gradient)") => Hyperparameter.NonNegative("wd", "λ", what, value);
    private static Hyperparameter Every(string what = "steps T between curvature probes") => Hyperparameter.Count("probe_every", "T", what, 10);
    private static readonly Hyperparameter Beta1 = Hyperparameter.Fraction("beta1", "β₁", "Adam's first-moment decay", 0.9);
    private static readonly Hyperparameter Beta2 = Hyperparameter.Fraction("beta2", "β₂", "Adam's second-moment decay", 0.999);
    private static readonly Hyperparameter Eps = Hyperparameter.Positive("eps", "ε", "Adam's denominator guard", 1e-8);
    private static readonly Hyperparameter Delta = new("delta", "δ", "margin below the stability limit", 0.5, 0, 2, MaxExclusive: true);
    private static readonly Hyperparameter Estimator = Hyperparameter.Choice("estimator", "estimator", "how λmax is estimated (batch: the batch sharpness g_BᵀH_Bg_B/‖g_B‖² of the step's own minibatch)", "power", "hutchinson", "kfac", "batch");
    private static readonly Hyperparameter Noise = Hyperparameter.NonNegative("noise", "σ", "std of the Gaussian noise ξ ~ N(0, σ²) added to every weight after each step (the seed's injected noise)", 0);
    private static readonly Hyperparameter PowerTolerance = Hyperparameter.Positive("power_tol", "tol", "relative tolerance of the first power iteration", 1e-2);
    private static readonly Hyperparameter WarmIterations = Hyperparameter.Count("warm_iters", "warm", "power products per probe after the first, continuing the last vector", 1);
    private static readonly Hyperparameter Direction = Hyperparameter.Choice("direction", "direction", "the base rule's directions", "sgd", "adam");

    private static CurvatureEstimator EstimatorOf(OptimizerArguments a) => (CurvatureEstimator)a.Choice("estimator");

    private static Caeo CreateCaeo(OptimizerArguments a, double momentum = 0, bool adaptive = false) =>
        new(a["lr"], a["delta"], a.Int("probe_every"), EstimatorOf(a), momentum: momentum, powerTolerance: a["power_tol"], seed: a.Seed, warmIterations: a.Int("warm_iters"),
            adaptive: adaptive, noise: a["noise"]);

    /// <summary>The table: every optimizer the verbs accept.</summary>
    public static readonly IReadOnlyList<OptimizerEntry> Entries =
    [
        new("sgd", "gradient descent", false, [Lr(0.1), Wd(0)], a => new GradientDescent(a["lr"], a["wd"])),
        new("momentum", "heavy-ball momentum", false, [Lr(0.05), Mu(0.9), Wd(0)], a => new Momentum(a["lr"], a["mu"], weightDecay: a["wd"])),
        new("nesterov", "Nesterov momentum", false, [Lr(0.05), Mu(0.9), Wd(0)], a => new Momentum(a["lr"], a["mu"], nesterov: true, weightDecay: a["wd"])),
        new("adam", "Adam (Kingma and Ba 2015)", false, [Lr(1e-3), Beta1, Beta2, Eps, Wd(0)],
            a => new Adam(a["lr"], a["beta1"], a["beta2"], a["eps"], a["wd"])),
        new("adamw", "AdamW (decoupled weight decay, Loshchilov and Hutter 2019)", false, [Lr(1e-3), Beta1, Beta2, Eps, Wd(0.01, "decoupled weight decay")],
            a => new Adam(a["lr"], a["beta1"], a["beta2"], a["eps"], a["wd"], decoupled: true)),
        new("kfac", "K-FAC (Martens and Grosse 2015): momentum on gradients preconditioned by the damped K-FAC inverse, refreshed every T steps", false,
            [Lr(0.01), Mu(0.9), Hyperparameter.Positive("damping", "λ", "damping added to each Fisher block before inversion", 0.1), Wd(0),
             Every("steps T between refreshes of the factors"),
             Hyperparameter.Fraction("decay", "ξ", "decay of the factors' running average (0: the latest factors alone)", 0),
             Hyperparameter.Count("inverse_every", "I", "refreshes between inversions of the (averaged) factors (T₂ = I·T)", 1)],
            a => new KfacOptimizer(a["lr"], a["mu"], a["damping"], a["wd"], a.Int("probe_every"), factorDecay: a["decay"], inverseEvery: a.Int("inverse_every"))),
        new("ekfac", "EKFAC (George et al. 2018): K-FAC in the factors' eigenbasis with the per-example gradients' second moments there as its scales", false,
            [Lr(0.01), Mu(0.9), Hyperparameter.Positive("damping", "λ", "damping added to each re-estimated scale before inversion", 0.1), Wd(0),
             Every("steps T between refreshes of the scales and inverses"),
             Hyperparameter.Count("basis_every", "B", "refreshes between recomputations of the factors' eigenbases (T₂ = B·T); the scales are re-estimated in the held basis at every refresh", 1)],
            a => new KfacOptimizer(a["lr"], a["mu"], a["damping"], a["wd"], a.Int("probe_every"), eigenvalueCorrected: true, basisEvery: a.Int("basis_every"))),
        new("l4", "L4 over Adam directions (Rolínek and Martius 2018)", false,
            [Hyperparameter.Positive("alpha", "α", "fraction of the linearized step to the loss minimum", 0.15),
             Hyperparameter.Fraction("gamma", "γ", "decay of the minimum-loss estimate", 0.9),
             Hyperparameter.Positive("tau", "τ", "steps for the minimum estimate to forget", 1000)],
            a => new L4("adam", a["alpha"], a["gamma"], a["tau"])),
        new("hidlr", "Hi-DLR (Xu et al. 2025), a group per layer", false, [Lr(0.1, "η", "initial learning rate"), Every("steps Φ between refreshes of the group rates"), Direction],
            a => new HiDlr(a["lr"], HiDlr.ByLayer(a.ParameterNames), a.Int("probe_every"), Direction.Choices![a.Choice("direction")])),
        new("hidlr-block", "Hi-DLR, a group per module prefix (depth 2: a residual block)", false,
            [Lr(0.1, "η", "initial learning rate"), Every("steps Φ between refreshes of the group rates"), Direction, Hyperparameter.Count("depth", "depth", "module-path parts that make a group", 2)],
            a => new HiDlr(a["lr"], HiDlr.ByPrefix(a.ParameterNames, a.Int("depth")), a.Int("probe_every"), Direction.Choices![a.Choice("direction")])),
        new("dcao", "DCAO: η = η₀·exp(−αρ), μ = μ₀·exp(−βγ), λ = λ₀·exp(−cρ) from the top-k Ritz values every T steps", true,
            [Lr(0.1, "η₀", "base learning rate"), Mu(0.9, "μ₀"), Wd(1e-4, "base decoupled weight decay λ₀"),
             // ρ at the first probe (32 training images, training mode, seed 0): 1.85 for the MLP, 332 for ResNet-20, so
             // 0.005 leaves the MLP's first steps at 0.99·η₀ and ResNet-20's at 0.19·η₀ instead of freezing either.
             Hyperparameter.NonNegative("alpha", "α", "η's sensitivity to the spectral radius ρ", 0.005),
             Hyperparameter.NonNegative("beta", "β", "μ's sensitivity to the spread γ", 0.005),
             Hyperparameter.NonNegative("c", "c", "weight decay's sensitivity to ρ", 0.005),
             Every(), Hyperparameter.Count("k", "k", "Ritz values used", 5), Hyperparameter.Count("iters", "iters", "Lanczos iterations per probe", 20),
             Hyperparameter.Choice("mode", "mode", "absolute: ρ and γ as measured (the seed's rule); relative: ρ/ρ̄ and γ/γ̄ against running means of the probes", "absolute", "relative"),
             Hyperparameter.Choice("gap", "gap", "shrinks: μ = μ₀·exp(−βγ) (the seed's formula); accelerates: μ = μ₀·(1 − exp(−βγ)) (the seed's words: a larger gap allows acceleration)", "shrinks", "accelerates"),
             new("floor", "floor", "η, μ and λ never fall below floor × their base (0: no floor)", 1e-3, 0, 1),
             new("ref_decay", "d", "relative mode: decay of the running means ρ̄ ← d·ρ̄ + (1 − d)·ρ", 0.9, 0, 1, MaxExclusive: true)],
            a => new Dcao(a["lr"], a["mu"], a["wd"], a["alpha"], a["beta"], a["c"], a.Int("probe_every"), a.Int("k"), a.Int("iters"),
                relative: a.Choice("mode") == 1, seed: a.Seed, gapAccelerates: a.Choice("gap") == 1, floor: a["floor"], referenceDecay: a["ref_decay"])) { LogsSharpness = true },
        new("caeo", "CAEO over GD: η = min(η_base, (2 − δ)/λmax)", true, [Lr(0.5, "η_base", "base learning rate"), Delta, Every(), Estimator, PowerTolerance, WarmIterations, Noise],
            a => CreateCaeo(a)) { LogsSharpness = true },
        new("caeo-momentum", "CAEO over heavy-ball momentum: η = min(η_base, (2 + 2μ − δ)/λmax)", true,
            [Lr(0.5, "η_base", "base learning rate"), Mu(0.9), Delta, Every(), Estimator, PowerTolerance, WarmIterations, Noise], a => CreateCaeo(a, momentum: a["mu"])) { LogsSharpness = true },
        new("caeo-adam", "CAEO over Adam: η = min(η_base, ((2 + 2β₁)/(1 − β₁) − δ)/λmax(P⁻¹H))", true,
            [Lr(3e-3, "η_base", "base learning rate"), Delta, Every(), Estimator, PowerTolerance, WarmIterations, Noise], a => CreateCaeo(a, adaptive: true)) { LogsSharpness = true },
    ];

    /// <summary>The valid names.</summary>
    public static IEnumerable<string> Names => Entries.Select(e => e.Name);

    /// <summary>The entry of that name, or null.</summary>
    public static OptimizerEntry? Find(string name) => Entries.FirstOrDefault(e => e.Name == name);

    /// <summary>Help text: each optimizer with its keys and defaults.</summary>
    public static string Help() => string.Join("; ", Entries.Select(e => $"{e.Name} ({string.Join(", ", e.Parameters.Select(p => $"{p.Key}={p.DefaultText}"))})"));
}
