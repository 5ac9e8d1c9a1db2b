using System.Numerics;
using Curvature.Kernels.Gpu;

namespace Curvature.Kernels;

/// <summary>
/// One Adam step's constants (Kingma and Ba 2015; AdamW, Loshchilov and Hutter 2019), passed by value to the CPU and
/// GPU kernels of <see cref="UpdateRules.Adam"/>.
/// </summary>
public struct AdamStep
{
    /// <summary>β₁, β₂ and ε.</summary>
    public double Beta1, Beta2, Epsilon;
    /// <summary>Coupled L2: the gradient is g + λ·w (0 for none, and for AdamW, whose decay is in <see cref="Keep"/>).</summary>
    public double L2;
    /// <summary>The bias corrections 1/(1 − β₁ᵗ) and 1/(1 − β₂ᵗ).</summary>
    public double Correction1, Correction2;
    /// <summary>w' = Keep·w − LearningRate·d (Keep = 1 − ηλ for AdamW, else 1).</summary>
    public double Keep, LearningRate;
    /// <summary>1: the third result is the stepped weights w'; 0: the direction d itself (for rules that scale it their own way).</summary>
    public int Apply;
}

/// <summary>One heavy-ball step's constants (<see cref="UpdateRules.MomentumBuffer{T}"/>), passed by value to the kernels.</summary>
public struct MomentumStep
{
    /// <summary>μ, the coupled L2 coefficient λ (0 for none) and η.</summary>
    public double Momentum, L2, LearningRate;
    /// <summary>1 for Nesterov's variant.</summary>
    public int Nesterov;
}

/// <summary>
/// The per-element rules of the optimizers' updates: the one definition the CPU and GPU kernels share, so a parameter's
/// whole update (its state and its new value) is one pass and one launch instead of one per operation (Adam took
/// twelve launches per parameter array, more than a GPT's forward and backward together).
/// </summary>
public static class UpdateRules
{
    /// <summary>The gradient with coupled L2, g + λ·w (g itself when λ = 0, so an infinite w does not turn it into NaN).</summary>
    public static double AdamGradient(double g, double w, AdamStep s) => s.L2 != 0 ? g + s.L2 * w : g;

    /// <summary>m' = β₁·m + (1 − β₁)·g.</summary>
    public static double FirstMoment(double m, double g, AdamStep s) => s.Beta1 * m + (1 - s.Beta1) * g;

    /// <summary>v' = β₂·v + (1 − β₂)·g².</summary>
    public static double SecondMoment(double v, double g, AdamStep s) => s.Beta2 * v + (1 - s.Beta2) * g * g;

    /// <summary>d = m̂/(√v̂ + ε) with m̂ = m·c₁ and v̂ = v·c₂, from the moments as stored (rounded to the element type).</summary>
    public static double Direction(double m, double v, AdamStep s) => m * s.Correction1 / (Math.Sqrt(v * s.Correction2) + s.Epsilon);

    /// <summary>The third result: w' = Keep·w − η·d, or d itself (<see cref="AdamStep.Apply"/>).</summary>
    public static double AdamResult(double w, double d, AdamStep s) => s.Apply != 0 ? s.Keep * w - s.LearningRate * d : d;

    /// <summary>
    /// One element of Adam in float64, each result rounded once to T: the moments m', v', then the direction from the
    /// rounded moments (what a later step and <c>Preconditioner</c> read back), then w' or d.
    /// </summary>
    public static AdamElement<T> Adam<T, K>(T w, T g, T m, T v, AdamStep s) where T : unmanaged, IFloatingPointIeee754<T> where K : struct, IScalarKind<T>
    {
        K k = default;
        double wd = k.ToDouble(w), gd = AdamGradient(k.ToDouble(g), wd, s);
        T mNext = k.From(FirstMoment(k.ToDouble(m), gd, s)), vNext = k.From(SecondMoment(k.ToDouble(v), gd, s));
        double d = Direction(k.ToDouble(mNext), k.ToDouble(vNext), s);
        return new AdamElement<T>(mNext, vNext, k.From(AdamResult(wd, d, s)));
    }

    /// <summary>
    /// Heavy-ball momentum's buffer b' = μ·b + (g + λ·w), in T with every product and sum rounded in turn: the roundings
    /// of the linear combinations it replaces (PyTorch's order).
    /// </summary>
    public static T MomentumBuffer<T>(T b, T g, T w, T mu, T l2, bool decay) where T : unmanaged, IFloatingPointIeee754<T> =>
        mu * b + MomentumGradient(g, w, l2, decay);

    /// <summary>g + λ·w in T (g itself without decay).</summary>
    public static T MomentumGradient<T>(T g, T w, T l2, bool decay) where T : unmanaged, IFloatingPointIeee754<T> => decay ? g + l2 * w : g;

    /// <summary>The weights after the step: w − η·b', or with Nesterov w − (g + λw + μ·b')·η, rounded op by op in T.</summary>
    public static T MomentumWeights<T>(T w, T g, T bNext, T mu, T l2, T eta, bool decay, bool nesterov) where T : unmanaged, IFloatingPointIeee754<T> =>
        nesterov ? w - (MomentumGradient(g, w, l2, decay) + bNext * mu) * eta : w + -eta * bNext;
}

/// <summary>One element's results of <see cref="UpdateRules.Adam{T, K}"/>: the moments and w' (or d).</summary>
public readonly struct AdamElement<T>(T m, T v, T result) where T : unmanaged
{
    /// <summary>m', v' and w' (or the direction d).</summary>
    public readonly T M = m, V = v, Result = result;
}
