using Curvature.Autodiff;
using Curvature.Engine;

namespace Curvature.Tests;

/// <summary>
/// JAX's <c>check_grads</c> for this engine (float64): the JVP against central finite differences, the VJP
/// through the identity ⟨ȳ, J·v⟩ = ⟨Jᵀȳ, v⟩ with J·v taken by finite differences, and, for order 2, the same
/// checks on v ↦ jvp(f)(x, v) and on x ↦ vjp(f)(x, ȳ), so both rules are themselves differentiated.
/// </summary>
public static class GradCheck
{
    public const double Eps = 1e-5;

    public static NdArray[] RandomLike(RandomGenerator rng, NdArray[] xs) =>
        xs.Select(x => rng.Normal(x.Shape, dtype: x.DType)).ToArray();

    public static NdArray[] Axpy(NdArray[] x, double a, NdArray[] v) => x.Zip(v, (p, q) => p + q * a).ToArray();

    private static Tensor[] T(NdArray[] xs) => xs.Select(x => (Tensor)x).ToArray();

    public static NdArray FiniteDifference(Func<Tensor[], Tensor> f, NdArray[] xs, NdArray[] v, double h = Eps) =>
        (f(T(Axpy(xs, h, v))).Data - f(T(Axpy(xs, -h, v))).Data) / (2 * h);

    /// <summary>
    /// True when f is smooth on the segment xs ± Eps·v, as far as finite differences can tell: the central
    /// differences at Eps and Eps/2 agree to 1e-8 of their scale. Where f is smooth they differ by O(Eps²); where a
    /// kink (a ReLU's zero) lies on the segment they differ by O(the jump in slope), and neither is a derivative.
    /// A wrong derivative rule does not change the differences, so this condition cannot hide one.
    /// </summary>
    public static bool SmoothAlong(Func<Tensor[], Tensor> f, NdArray[] xs, NdArray[] v)
    {
        var (h, half) = (FiniteDifference(f, xs, v).ToDoubleArray(), FiniteDifference(f, xs, v, Eps / 2).ToDoubleArray());
        double scale = Math.Max(1, h.Max(Math.Abs));
        return h.Zip(half, (a, b) => Math.Abs(a - b)).Max() <= 1e-8 * scale;
    }

    public static void AssertClose(NdArray actual, NdArray expected, double rtol, double atol, string what)
    {
        Assert.Equal(expected.Shape, actual.Shape);
        var a = actual.ToDoubleArray();
        var e = expected.ToDoubleArray();
        double scale = e.Length == 0 ? 0 : e.Max(Math.Abs);
        for (int i = 0; i < a.Length; i++)
        {
            double err = Math.Abs(a[i] - e[i]);
            if (!(err <= atol + rtol * Math.Max(scale, Math.Abs(e[i]))))
                Assert.Fail($"{what}: element {i} is {a[i]:R}, expected {e[i]:R} (error {err:E2}, allowed {atol + rtol * scale:E2}).");
        }
    }

    /// <summary>Checks f's derivatives at xs to the given order in forward and reverse mode.</summary>
    public static void Check(Func<Tensor[], Tensor> f, NdArray[] xs, int order, ulong seed, double rtol = 1e-6, double atol = 1e-8, string name = "f")
    {
        var rng = new RandomGenerator(seed);
        var v = RandomLike(rng, xs);
        var fd = FiniteDifference(f, xs, v);

        // Forward mode.
        var (_, tangent) = Derivatives.Jvp(f, T(xs), T(v));
        AssertClose(tangent.Data, fd, rtol, atol, $"{name}: JVP vs finite differences (order {order})");

        // Reverse mode: ⟨ȳ, J v⟩ = ⟨Jᵀ ȳ, v⟩ with J v from finite differences.
        var y = f(T(xs)).Data;
        var yBar = rng.Normal(y.Shape, dtype: y.DType);
        var (_, bars) = Derivatives.Vjp(f, T(xs), yBar);
        double lhs = yBar.Dot(fd);
        double rhs = bars.Zip(v, (b, vi) => b.Data.Dot(vi)).Sum();
        double scaleV = Math.Sqrt(yBar.Dot(yBar) * fd.Dot(fd)) + Math.Abs(lhs);
        if (!(Math.Abs(lhs - rhs) <= atol * 10 + rtol * 10 * scaleV))
            Assert.Fail($"{name}: VJP identity ⟨ȳ, Jv⟩ = {lhs:R} but ⟨Jᵀȳ, v⟩ = {rhs:R} (order {order}).");

        if (order > 1)
        {
            Check(a => Derivatives.Jvp(f, a, T(v)).Tangent, xs, order - 1, seed + 1, rtol, atol, $"jvp({name})");
            Check(a => Flatten(Derivatives.Vjp(f, a, yBar).Cotangents), xs, order - 1, seed + 2, rtol, atol, $"vjp({name})");
        }
    }

    /// <summary>All tensors flattened and joined into one vector (differentiable).</summary>
    public static Tensor Flatten(Tensor[] ts) => ts.Length == 1 ? ts[0].Reshape(-1) : Tensor.Concat(ts.Select(t => t.Reshape(-1)).ToArray(), 0);
}
