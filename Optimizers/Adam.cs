using Curvature.Engine;
using Curvature.Kernels.Cpu;

namespace Curvature.Optimizers;

/// <summary>
/// Adam (Kingma and Ba 2015): m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g², m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ),
/// w ← w − η m̂/(√v̂ + ε). With <c>decoupled</c> it is AdamW (Loshchilov and Hutter 2019): the weights also
/// shrink by η λ w each step, outside the adaptive scaling; otherwise λ is coupled L2 (g = ∇L + λ w).
/// </summary>
public sealed class Adam : IOptimizer
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
    public NdArray[] Directions(StepContext c)
    {
        Check.Gradients(c, Name);
        int n = c.Parameters.Count;
        double t = state["t"] + 1;
        state["t"] = t;
        double c1 = 1 - Math.Pow(Beta1, t), c2 = 1 - Math.Pow(Beta2, t);
        var directions = new NdArray[n];
        for (int i = 0; i < n; i++)
        {
            var w = c.Parameters[i].Value;
            var g = WeightDecay > 0 && !Decoupled ? c.Gradients[i] + w * WeightDecay : c.Gradients[i];
            var m = state.Buffer("m", i, n, w) * Beta1 + g * (1 - Beta1);
            var v = state.Buffer("v", i, n, w) * Beta2 + g * g * (1 - Beta2);
            state.Set("m", i, m);
            state.Set("v", i, v);
            directions[i] = m * (1 / c1) / ((v * (1 / c2)).Apply(UnaryOp.Sqrt) + Epsilon);
        }
        return directions;
    }

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
        var d = Directions(c);
        for (int i = 0; i < d.Length; i++)
        {
            // w·(1 − ηλ) − η·d as one combination (one launch on an accelerator, the roundings of the two steps).
            double keep = Decoupled && WeightDecay > 0 ? 1 - LearningRate * WeightDecay : 1;
            c.Parameters[i].Value = NdArray.LinearCombination([c.Parameters[i].Value, d[i]], [keep, -LearningRate]);
        }
        Last = new StepLog(LearningRate, Beta1, WeightDecay, null);
    }

    /// <inheritdoc/>
    public IReadOnlyList<(string Name, NdArray Value)> State() => state.Export();

    /// <inheritdoc/>
    public void LoadState(IReadOnlyDictionary<string, NdArray> s) => state.Import(s, Name);
}
