using Curvature.Engine;
using Curvature.Spectral;

namespace Curvature.Optimizers;

/// <summary>
/// K-FAC as an optimizer (Martens and Grosse 2015, §6–7, without their adaptive damping and step rescaling): every T
/// steps the factors are recomputed on the probe batch (the true Fisher, labels sampled from the model), kept as an
/// exponential moving average with decay ξ (ξ = 0: the latest factors alone), and every I-th refresh (T₂ = I·T)
/// that average is inverted with damping λ; each step's gradient g + ω·w is preconditioned by that inverse,
/// d = (F̂ + λ)⁻¹(g + ω·w) (<see cref="KfacPreconditioner"/>), then heavy-ball momentum takes the step: b ← μb + d,
/// w ← w − ηb. Eigenvalue-corrected (EKFAC, George et al. 2018) it preconditions in the factors' eigenbasis with the
/// re-estimated scales instead (<see cref="KroneckerFactoredCurvature"/>), its eigenbases recomputed every
/// B-th refresh (T₂ = B·T) and the scales every refresh in the basis held (George et al.'s amortization; B = 1
/// recomputes both every time). The inverse and the averaged factors are part of the checkpointed state, so a
/// resumed run takes the same steps.
/// </summary>
public sealed class KfacOptimizer : IHasLearningRate
{
    private readonly OptimizerState state = new();
    private readonly Momentum inner;
    private KfacPreconditioner? preconditioner;
    // The running average of the K-FAC factors (KroneckerFactoredCurvature.FactorArrays' order), when ξ > 0.
    private IReadOnlyList<NdArray>? average;

    /// <summary>
    /// A rule with learning rate η, momentum μ, damping λ, weight decay ω and refresh interval T; EKFAC's blocks with
    /// <paramref name="eigenvalueCorrected"/>, their eigenbases recomputed every <paramref name="basisEvery"/>-th refresh;
    /// K-FAC's factors averaged with decay <paramref name="factorDecay"/> ξ and inverted every <paramref name="inverseEvery"/>-th refresh.
    /// </summary>
    public KfacOptimizer(double learningRate, double momentum = 0.9, double damping = 0.1, double weightDecay = 0, int every = 20, bool eigenvalueCorrected = false, int basisEvery = 1,
        double factorDecay = 0, int inverseEvery = 1)
    {
        FactorDecay = factorDecay >= 0 && factorDecay < 1 ? factorDecay : throw new ArgumentOutOfRangeException(nameof(factorDecay), factorDecay, "kfac: the factors' decay ξ must lie in [0, 1).");
        InverseEvery = inverseEvery >= 1 ? inverseEvery : throw new ArgumentOutOfRangeException(nameof(inverseEvery), inverseEvery, "kfac: the inverse must be recomputed every 1 or more refreshes.");
        if (eigenvalueCorrected && (factorDecay > 0 || inverseEvery > 1))
            throw new ArgumentException("ekfac: the factors' average and the inverse interval are K-FAC's; EKFAC amortizes with basisEvery.", nameof(factorDecay));
        EigenvalueCorrected = eigenvalueCorrected;
        BasisEvery = basisEvery >= 1 ? basisEvery : throw new ArgumentOutOfRangeException(nameof(basisEvery), basisEvery, "ekfac: the eigenbasis must be recomputed every 1 or more refreshes.");
        if (basisEvery > 1 && !eigenvalueCorrected) throw new ArgumentException("kfac: only EKFAC holds an eigenbasis between refreshes; basisEvery must be 1.", nameof(basisEvery));
        Damping = Check.Positive(damping, "kfac", "damping");
        WeightDecay = Check.NonNegative(weightDecay, "kfac", "weight decay");
        Every = every >= 1 ? every : throw new ArgumentOutOfRangeException(nameof(every), every, "kfac: the refresh interval must be at least 1 step.");
        inner = new Momentum(learningRate, momentum);
        Last = new StepLog(learningRate, momentum, WeightDecay, null);
    }

    /// <summary>η.</summary>
    public double LearningRate { get => inner.LearningRate; set => inner.LearningRate = value; }
    /// <summary>λ, added to each Fisher block before inversion (√λ to each Kronecker factor).</summary>
    public double Damping { get; }
    /// <summary>ω (L2, added to the gradient before preconditioning).</summary>
    public double WeightDecay { get; }
    /// <summary>T: steps between refreshes of the factors (EKFAC: of the scales and the inverse; K-FAC inverts every <see cref="InverseEvery"/>-th).</summary>
    public int Every { get; }

    /// <summary>Whether the blocks are EKFAC's (eigenbasis and re-estimated scales).</summary>
    public bool EigenvalueCorrected { get; }

    /// <summary>B: EKFAC recomputes its eigenbases every B-th refresh, re-estimating only the scales in between.</summary>
    public int BasisEvery { get; }

    /// <summary>ξ: K-FAC's factors are the average ξ·previous + (1 − ξ)·latest, updated every refresh.</summary>
    public double FactorDecay { get; }

    /// <summary>I: K-FAC inverts its (averaged) factors every I-th refresh (T₂ = I·T).</summary>
    public int InverseEvery { get; }

    /// <inheritdoc/>
    public string Name => EigenvalueCorrected ? "ekfac" : "kfac";

    /// <inheritdoc/>
    public StepLog Last { get; private set; }

    /// <inheritdoc/>
    public void Step(StepContext c)
    {
        Check.Gradients(c, Name);
        if (c.Step % Every == 0 || preconditioner is null)
        {
            var kfac = c.Kfac ?? throw new InvalidOperationException($"{Name}: step {c.Step} needs K-FAC factors but the step context has none (give the run a probe batch).");
            // The refresh count follows from the step, so a resumed run holds and recomputes the same bases and inverses.
            int refresh = c.Step / Every;
            if (EigenvalueCorrected)
            {
                bool rebasis = preconditioner is null || refresh % BasisEvery == 0;
                preconditioner = kfac(true, rebasis ? null : preconditioner).Inverse(Damping);
            }
            else
            {
                bool invert = preconditioner is null || refresh % InverseEvery == 0;
                if (FactorDecay > 0 || invert)   // without an average, factors no inverse uses are not computed
                {
                    var factors = kfac(false, null);
                    if (FactorDecay > 0)
                    {
                        factors = average is null ? factors : factors.Averaged(average, FactorDecay);
                        average = factors.FactorArrays();
                    }
                    if (invert) preconditioner = factors.Inverse(Damping);
                }
            }
        }
        var g = WeightDecay > 0 ? c.Gradients.Select((gi, i) => gi + c.Parameters[i].Data * WeightDecay).ToArray() : c.Gradients;
        var d = preconditioner!.Apply(g);   // set above: a missing one is always refreshed
        inner.Step(new StepContext { Step = c.Step, Loss = c.Loss, Parameters = c.Parameters, Gradients = d });
        Last = new StepLog(inner.LearningRate, inner.Beta, WeightDecay, null);
    }

    /// <inheritdoc/>
    public IReadOnlyList<(string Name, NdArray Value)> State()
    {
        var own = new List<(string, NdArray)>();
        if (preconditioner is not null)
            for (int j = 0; j < preconditioner.Blocks.Count; j++)
            {
                var b = preconditioner.Blocks[j];
                own.Add(($"kfac_block.{j}", NdArray.FromArray(new long[] { b.Kind, b.First, b.Second }, new Shape(3))));
                own.Add(($"kfac_a.{j}", b.A));
                own.Add(($"kfac_b.{j}", b.B));
                if (b.C is not null) own.Add(($"kfac_c.{j}", b.C));
            }
        if (average is not null)
            for (int i = 0; i < average.Count; i++) own.Add(($"kfac_average.{i}", average[i]));
        return [.. own, .. inner.State().Select(s => ("base." + s.Name, s.Value))];
    }

    /// <inheritdoc/>
    public void LoadState(IReadOnlyDictionary<string, NdArray> s)
    {
        inner.LoadState(s.Where(kv => kv.Key.StartsWith("base.", StringComparison.Ordinal)).ToDictionary(kv => kv.Key["base.".Length..], kv => kv.Value));
        var blocks = new List<KfacPreconditioner.Block>();
        for (int j = 0; s.TryGetValue($"kfac_block.{j}", out var desc); j++)
        {
            var k = desc.ToArray<long>();
            NdArray Need(string name) => s.TryGetValue($"{name}.{j}", out var v) ? v : throw new ArgumentException($"{Name}: the state has kfac_block.{j} but no {name}.{j}.");
            blocks.Add(new((int)k[0], (int)k[1], (int)k[2], Need("kfac_a"), Need("kfac_b"), s.GetValueOrDefault($"kfac_c.{j}")));
        }
        preconditioner = blocks.Count > 0 ? new KfacPreconditioner(blocks) : null;
        var averaged = new List<NdArray>();
        for (int i = 0; s.TryGetValue($"kfac_average.{i}", out var a); i++) averaged.Add(a);
        average = averaged.Count > 0 ? averaged : null;
        var unknown = s.Keys.Where(k => !k.StartsWith("base.", StringComparison.Ordinal) && !k.StartsWith("kfac_", StringComparison.Ordinal)).ToArray();
        if (unknown.Length > 0) throw new ArgumentException($"{Name}: unexpected state entries {string.Join(", ", unknown)}.");
    }
}
