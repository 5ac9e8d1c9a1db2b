using Curvature.Engine;
using Curvature.Spectral;

namespace Curvature.Optimizers;

/// <summary>
/// Hi-DLR (Xu, Bu, Zhang and Barnett 2025, arXiv 2501.06954, "Hessian-informed differential learning rate"):
/// the parameters are split into K groups (one per layer by default); the base rule gives directions d_k; every
/// Φ steps each group gets its own rate from the quadratic model along d_k, η_k = b_k/A_kk with
/// b_k = G_kᵀd_k and A_kk = d_kᵀH_kk d_k, both on the step's minibatch, and a group whose A_kk ≤ 0 is not
/// updated until the next refresh.
/// The paper fits b and A from 4K forward passes; here A_kk is exact, one HVP per group with the direction
/// restricted to that group. Rates are smoothed as GeN does: η_k ← 0.9·η_k + 0.1·clip(b_k/A_kk, η_k/2, 2η_k).
/// </summary>
public sealed class HiDlr : IOptimizer
{
    private readonly OptimizerState state = new();
    private readonly int[] groupOf;
    private readonly Adam? adam;

    /// <summary>
    /// Hi-DLR over "sgd" (d = g) or "adam" directions; <paramref name="groups"/>[i] is parameter i's group.
    /// </summary>
    public HiDlr(double learningRate, IReadOnlyList<int> groups, int refreshEvery = 10, string direction = "sgd")
    {
        LearningRate = Check.Positive(learningRate, "hidlr", "initial learning rate");
        if (groups.Count == 0 || groups.Any(g => g < 0)) throw new ArgumentException("hidlr: every parameter needs a group index ≥ 0.");
        groupOf = groups.ToArray();
        Groups = groupOf.Max() + 1;
        RefreshEvery = refreshEvery >= 1 ? refreshEvery : throw new ArgumentOutOfRangeException(nameof(refreshEvery), refreshEvery, "hidlr: Φ must be at least 1.");
        adam = direction switch
        {
            "sgd" => null,
            "adam" => new Adam(1),
            _ => throw new ArgumentException($"hidlr: direction '{direction}' is not one of sgd, adam."),
        };
        Name = $"hidlr-{direction}";
        Last = new StepLog(LearningRate, 0, 0, null);
    }

    /// <summary>Groups by layer: parameters whose names share everything before the last dot.</summary>
    public static int[] ByLayer(IReadOnlyList<string> names) => ByPrefix(names, int.MaxValue);

    /// <summary>
    /// Groups by module prefix: parameters whose module paths (the name without its last part) agree in their first
    /// <paramref name="depth"/> parts. Depth 2 on ResNet-20 gives one group per residual block ("layer2.0") beside
    /// the stem's "conv1" and "bn1" and the head "fc": 12 groups instead of 43 layers, so a refresh costs 12 HVPs.
    /// </summary>
    public static int[] ByPrefix(IReadOnlyList<string> names, int depth)
    {
        if (depth < 1) throw new ArgumentOutOfRangeException(nameof(depth), depth, "hidlr: the prefix depth must be at least 1.");
        var index = new Dictionary<string, int>();
        return names.Select(n =>
        {
            var parts = n.Split('.');
            string module = string.Join('.', parts.Take(Math.Min(depth, Math.Max(parts.Length - 1, 1))));
            if (!index.TryGetValue(module, out int g)) index[module] = g = index.Count;
            return g;
        }).ToArray();
    }

    /// <summary>The initial rate of every group.</summary>
    public double LearningRate { get; }
    /// <summary>K.</summary>
    public int Groups { get; }
    /// <summary>Φ.</summary>
    public int RefreshEvery { get; }

    /// <summary>The current η_k.</summary>
    public double[] GroupRates => Enumerable.Range(0, Groups).Select(k => state.Has($"eta{k}") ? state[$"eta{k}"] : LearningRate).ToArray();

    /// <summary>b_k/A_kk of the last refresh (NaN where A_kk ≤ 0).</summary>
    public double[] LastRatios { get; private set; } = [];

    /// <inheritdoc/>
    public string Name { get; }

    /// <inheritdoc/>
    public StepLog Last { get; private set; }

    /// <inheritdoc/>
    public void Step(StepContext c)
    {
        Check.Gradients(c, Name);
        if (groupOf.Length != c.Parameters.Count) throw new ArgumentException($"{Name}: {groupOf.Length} group indices for {c.Parameters.Count} parameters.");
        var d = adam is null ? c.Gradients.ToArray() : adam.Directions(c);
        if (c.Step % RefreshEvery == 0) Refresh(c, d);
        var rates = GroupRates;
        for (int i = 0; i < d.Length; i++)
        {
            int k = groupOf[i];
            if (state[$"skip{k}"] != 0) continue;
            c.Parameters[i].Data = c.Parameters[i].Data - d[i] * rates[k];
        }
        Last = new StepLog(rates.Average(), 0, 0, null);
    }

    private void Refresh(StepContext c, NdArray[] d)
    {
        // b_k comes from this minibatch's gradient, so A_kk must too (the paper fits both on one batch); the
        // probe-batch Hessian is the fallback when the caller offers only that.
        var op = c.MinibatchCurvature?.Invoke() ?? Check.Curvature(c, Name);
        var ratios = new double[Groups];
        for (int k = 0; k < Groups; k++)
        {
            double b = 0;
            var restricted = new NdArray[d.Length];
            for (int i = 0; i < d.Length; i++)
            {
                restricted[i] = groupOf[i] == k ? d[i] : d[i].ZerosLike();
                if (groupOf[i] == k) b += c.Gradients[i].Dot(d[i]);
            }
            var hd = Vectors.Unflatten(op.Apply(Vectors.Flatten(restricted)), restricted.Select(r => r.Shape).ToArray());
            double a = 0;
            for (int i = 0; i < d.Length; i++) if (groupOf[i] == k) a += d[i].Dot(hd[i]);
            Check.FiniteCurvature(a, c, Name);
            if (!(a > 0)) { state[$"skip{k}"] = 1; ratios[k] = double.NaN; continue; }
            state[$"skip{k}"] = 0;
            double eta = state.Has($"eta{k}") ? state[$"eta{k}"] : LearningRate;
            ratios[k] = b / a;
            state[$"eta{k}"] = 0.9 * eta + 0.1 * Math.Clamp(b / a, eta / 2, 2 * eta);
        }
        LastRatios = ratios;
    }

    /// <inheritdoc/>
    public IReadOnlyList<(string Name, NdArray Value)> State() => state.ExportWith(adam);

    /// <inheritdoc/>
    public void LoadState(IReadOnlyDictionary<string, NdArray> s) => state.ImportWith(s, Name, adam);
}
