using Curvature.Engine;
using Curvature.Kernels;
using Curvature.Kernels.Cpu;

namespace Curvature.Optimizers;

/// <summary>
/// Adam (Kingma and Ba 2015): m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g², m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ),
/// w ← w − η m̂/(√v̂ + ε). With <c>decoupled</c> it is AdamW (Loshchilov and Hutter 2019): the weights also
/// shrink by η λ w each step, outside the adaptive scaling; otherwise λ is coupled L2 (g = ∇L + λ w).
/// </summary>
public sealed class Adam : IHasLearningRate
{
    private readonly OptimizerState state = new();

    /// <summary>Adam (or AdamW when <paramref name="decoupled"/>).</summary>
    public Adam(double learningRate, double beta1 = 0.9, double beta2 = 0.999, double epsilon = 1e-8, double weightDecay = 0, bool decoupled = false)
    {
        string name = decoupled ? "adamw" : "adam";
        LearningRate = Check.Positive(learningRate, name, "learning rate");
        Beta1 = Check.Fraction(beta1, name, "beta1");
        Beta2 = Check.Fraction(beta2, name, "beta2");
        Epsilon = Check.Positive(epsilon, name, "epsilon");
        WeightDecay = Check.NonNegative(weightDecay, name, "weight decay");
        Decoupled = decoupled;
        Last = new StepLog(LearningRate, Beta1, WeightDecay, null);
    }

    /// <summary>η.</summary>
    public double LearningRate { get; set; }
    /// <summary>β₁.</summary>
    public double Beta1 { get; }
    /// <summary>β₂.</summary>
    public double Beta2 { get; }
    /// <summary>ε.</summary>
    public double Epsilon { get; }
    /// <summary>λ.</summary>
    public double WeightDecay { get; }
    /// <summary>AdamW's decoupled weight decay.</summary>
    public bool Decoupled { get; }

    /// <inheritdoc/>
    public string Name => Decoupled ? "adamw" : "adam";

    /// <inheritdoc/>
    public StepLog Last { get; private set; }

    /// <summary>Updates the moments with the gradients and returns the directions m̂/(√v̂ + ε), one per parameter.</summary>
    public NdArray[] Directions(StepContext c) => Update(c, apply: false);

    /// <summary>
    /// Updates the moments and returns, per parameter, the stepped weights (<paramref name="apply"/>) or the direction:
    /// each parameter's whole update in one pass (<see cref="FusedUpdates.Adam"/>, one launch on an accelerator instead
    /// of a dozen), in float64 with each result rounded once.
    /// </summary>
    private NdArray[] Update(StepContext c, bool apply)
    {
        Check.Gradients(c, Name);
        int n = c.Parameters.Count;
        double t = state["t"] + 1;
        state["t"] = t;
        var step = new AdamStep
        {
            Beta1 = Beta1, Beta2 = Beta2, Epsilon = Epsilon,
            L2 = Decoupled ? 0 : WeightDecay,
            Correction1 = 1 / (1 - Math.Pow(Beta1, t)), Correction2 = 1 / (1 - Math.Pow(Beta2, t)),
            // AdamW: w·(1 − ηλ) − η·d, the decay outside the adaptive scaling.
            Keep = Decoupled && WeightDecay > 0 ? 1 - LearningRate * WeightDecay : 1,
            LearningRate = LearningRate,
            Apply = apply ? 1 : 0,
        };
        var results = new NdArray[n];
        for (int i = 0; i < n; i++)
        {
            var w = c.Parameters[i].Data;
            var (m, v, result) = FusedUpdates.Adam(w, c.Gradients[i], state.Buffer("m", i, n, w), state.Buffer("v", i, n, w), step);
            state.Set("m", i, m);
            state.Set("v", i, v);
            results[i] = result;
        }
        return results;
    }

    /// <summary>Steps taken (t of the bias corrections).</summary>
    public int StepsTaken => (int)state["t"];

    /// <summary>
    /// The diagonal preconditioner P = √v̂ + ε of parameter i after the last <see cref="Directions"/> call (Adam's
    /// step is η P⁻¹ m̂).
    /// </summary>
    public NdArray Preconditioner(int i, int count, NdArray like)
    {
        double t = Math.Max(1, state["t"]);
        return (state.Buffer("v", i, count, like) * (1 / (1 - Math.Pow(Beta2, t)))).Apply(UnaryOp.Sqrt) + Epsilon;
    }

    /// <inheritdoc/>
    public void Step(StepContext c)
    {
        var stepped = Update(c, apply: true);
        for (int i = 0; i < stepped.Length; i++) c.Parameters[i].Data = stepped[i];
        Last = new StepLog(LearningRate, Beta1, WeightDecay, null);
    }

    /// <inheritdoc/>
    public IReadOnlyList<(string Name, NdArray Value)> State() => state.Export();

    /// <inheritdoc/>
    public void LoadState(IReadOnlyDictionary<string, NdArray> s) => state.Import(s, Name);
}
