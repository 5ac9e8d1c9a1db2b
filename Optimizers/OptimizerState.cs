using Curvature.Engine;

namespace Curvature.Optimizers;

/// <summary>Per-parameter buffers (moments) and scalars, named for checkpoints.</summary>
internal sealed class OptimizerState
{
    private readonly Dictionary<string, NdArray?[]> buffers = new();
    private readonly Dictionary<string, double> scalars = new();

    /// <summary>The buffer of one kind for parameter i, created as zeros like <paramref name="like"/>.</summary>
    public NdArray Buffer(string kind, int i, int count, NdArray like)
    {
        if (!buffers.TryGetValue(kind, out var list) || list.Length != count) buffers[kind] = list = new NdArray?[count];
        return list[i] ??= like.ZerosLike();
    }

    public void Set(string kind, int i, NdArray value) => buffers[kind][i] = value;

    public double this[string name]
    {
        get => scalars.TryGetValue(name, out var v) ? v : 0;
        set => scalars[name] = value;
    }

    public bool Has(string name) => scalars.ContainsKey(name);

    public IReadOnlyList<(string Name, NdArray Value)> Export()
    {
        var list = new List<(string, NdArray)>();
        foreach (var (kind, values) in buffers)
            for (int i = 0; i < values.Length; i++)
                if (values[i] is { } v) list.Add(($"{kind}.{i}", v));
        foreach (var (name, v) in scalars) list.Add(($"scalar.{name}", NdArray.FromArray(new[] { v }, Shape.Scalar)));
        return list;
    }

    /// <summary>This state followed by a wrapped rule's (its base directions or update), prefixed "base.".</summary>
    public IReadOnlyList<(string Name, NdArray Value)> ExportWith(IOptimizer? inner) =>
        [.. Export(), .. (inner?.State() ?? []).Select(s => (BasePrefix + s.Name, s.Value))];

    /// <summary>
    /// Splits state written by <see cref="ExportWith"/>: entries prefixed "base." go to the wrapped rule, the
    /// rest (less the <paramref name="foreign"/> names the caller keeps itself) to this state.
    /// </summary>
    public void ImportWith(IReadOnlyDictionary<string, NdArray> state, string optimizer, IOptimizer? inner, params string[] foreign)
    {
        Import(state.Where(kv => !kv.Key.StartsWith(BasePrefix, StringComparison.Ordinal) && !foreign.Contains(kv.Key)).ToDictionary(), optimizer);
        inner?.LoadState(state.Where(kv => kv.Key.StartsWith(BasePrefix, StringComparison.Ordinal))
            .ToDictionary(kv => kv.Key[BasePrefix.Length..], kv => kv.Value));
    }

    private const string BasePrefix = "base.";

    public void Import(IReadOnlyDictionary<string, NdArray> state, string optimizer)
    {
        buffers.Clear();
        scalars.Clear();
        foreach (var (name, value) in state)
        {
            if (name.StartsWith("scalar.", StringComparison.Ordinal)) { scalars[name["scalar.".Length..]] = value.ToScalar(); continue; }
            int dot = name.LastIndexOf('.');
            if (dot < 0 || !int.TryParse(name[(dot + 1)..], out int i) || i < 0)
                throw new ArgumentException($"{optimizer}: state entry '{name}' is not of the form kind.index or scalar.name.");
            string kind = name[..dot];
            if (!buffers.TryGetValue(kind, out var list) || list.Length <= i)
            {
                var grown = new NdArray?[Math.Max(i + 1, list?.Length ?? 0)];
                list?.CopyTo(grown, 0);
                buffers[kind] = list = grown;
            }
            list[i] = value;
        }
    }
}
