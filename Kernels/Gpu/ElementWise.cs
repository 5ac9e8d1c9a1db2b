using System.Numerics;
using ILGPU;

namespace Curvature.Kernels.Gpu;

/// <summary>
/// Element-wise kernels: the same ops and the same formulas as <see cref="Cpu.ElementWise"/> (erf and GELU are
/// the CPU's float64 scalar functions, compiled by ILGPU), one thread per element in a grid-stride loop. Broadcast operands are read through zero strides, never materialized.
/// </summary>
public static class ElementWise
{
    /// <summary>r[i] = value.</summary>
    public static void Fill<T>(ArrayView<T> r, T value) where T : unmanaged
    {
        for (int i = KernelCache.First; i < r.IntLength; i += KernelCache.Step) r[i] = value;
    }

    /// <summary>r[i] = op(x[i]).</summary>
    public static void Unary<T, K>(ArrayView<T> x, ArrayView<T> r, int op)
        where T : unmanaged, IFloatingPointIeee754<T> where K : struct, IScalarKind<T>
    {
        for (int i = KernelCache.First; i < r.IntLength; i += KernelCache.Step) r[i] = Apply<T, K>((UnaryOp)op, x[i]);
    }

    /// <summary>One unary op on one value.</summary>
    public static T Apply<T, K>(UnaryOp op, T v) where T : unmanaged, IFloatingPointIeee754<T> where K : struct, IScalarKind<T>
    {
        K k = default;
        switch (op)
        {
            case UnaryOp.Neg: return -v;
            case UnaryOp.Exp: return k.From(ScalarMath.Exp(k.ToDouble(v)));
            case UnaryOp.Log: return k.From(ScalarMath.Log(k.ToDouble(v)));
            case UnaryOp.Tanh: return k.From(ScalarMath.Tanh(k.ToDouble(v)));
            case UnaryOp.Sqrt: return T.Sqrt(v);
            case UnaryOp.Relu: return v > T.Zero ? v : (T.IsNaN(v) ? v : T.Zero);
            case UnaryOp.Abs: return T.Abs(v);
            case UnaryOp.Square: return v * v;
            case UnaryOp.Reciprocal: return T.One / v;
            case UnaryOp.Erf: return k.From(ErrorFunction.Erf(k.ToDouble(v)));
            case UnaryOp.Gelu: return k.From(ScalarMath.Gelu(k.ToDouble(v)));
            case UnaryOp.GeluDerivative: return k.From(ScalarMath.GeluDerivative(k.ToDouble(v)));
            default: return k.From(ScalarMath.GeluSecondDerivative(k.ToDouble(v)));
        }
    }

    /// <summary>r[i] = op(x[·], y[·]) with both operands read through the layout's strides.</summary>
    public static void Binary<T, K>(ArrayView<T> x, ArrayView<T> y, ArrayView<T> r, StridedLayout layout, int op)
        where T : unmanaged, IFloatingPointIeee754<T> where K : struct, IScalarKind<T>
    {
        for (int i = KernelCache.First; i < r.IntLength; i += KernelCache.Step)
        {
            layout.Offsets(i, out int a, out int b, out _);
            r[i] = Apply<T, K>((BinaryOp)op, x[a], y[b]);
        }
    }

    /// <summary>
    /// r[i] = op(x[i], c) for a scalar c (already of x's dtype): a scalar operand comes as the launch's argument,
    /// not as a one-element array that a launch of its own would fill.
    /// </summary>
    public static void BinaryScalar<T, K>(ArrayView<T> x, ArrayView<T> r, T c, int op)
        where T : unmanaged, IFloatingPointIeee754<T> where K : struct, IScalarKind<T>
    {
        for (int i = KernelCache.First; i < r.IntLength; i += KernelCache.Step) r[i] = Apply<T, K>((BinaryOp)op, x[i], c);
    }

    /// <summary>
    /// One binary op on two values: the semantics of <see cref="Cpu.ElementWise.Scalar{T}"/>, written again because
    /// ILGPU cannot compile that one's throwing default arm.
    /// </summary>
    public static T Apply<T, K>(BinaryOp op, T x, T y) where T : unmanaged, IFloatingPointIeee754<T> where K : struct, IScalarKind<T>
    {
        K k = default;
        switch (op)
        {
            case BinaryOp.Add: return x + y;
            case BinaryOp.Sub: return x - y;
            case BinaryOp.Mul: return x * y;
            case BinaryOp.Div: return x / y;
            case BinaryOp.Max: return T.IsNaN(x) || T.IsNaN(y) ? T.NaN : (x > y ? x : y);
            case BinaryOp.Min: return T.IsNaN(x) || T.IsNaN(y) ? T.NaN : (x < y ? x : y);
            case BinaryOp.Pow: return k.From(ScalarMath.Pow(k.ToDouble(x), k.ToDouble(y)));
            case BinaryOp.Greater: return x > y ? T.One : T.Zero;
            case BinaryOp.GreaterEqual: return x >= y ? T.One : T.Zero;
            case BinaryOp.Less: return x < y ? T.One : T.Zero;
            case BinaryOp.LessEqual: return x <= y ? T.One : T.Zero;
            case BinaryOp.Equal: return x == y ? T.One : T.Zero;
            case BinaryOp.MulOneMinusSquare: return y * (T.One - x * x);
            default: return x > T.Zero ? y : T.Zero; // MaskPositive
        }
    }

    /// <summary>r[i] = cond[·] ≠ 0 ? x[·] : y[·], all three read through the layout's strides.</summary>
    public static void Where<T>(ArrayView<T> cond, ArrayView<T> x, ArrayView<T> y, ArrayView<T> r, StridedLayout layout)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int i = KernelCache.First; i < r.IntLength; i += KernelCache.Step)
        {
            layout.Offsets(i, out int c, out int a, out int b);
            r[i] = cond[c] != T.Zero ? x[a] : y[b];
        }
    }

    /// <summary>r[i] = x[i] converted (through float64, as the CPU converts).</summary>
    public static void Cast<TIn, KIn, TOut, KOut>(ArrayView<TIn> x, ArrayView<TOut> r)
        where TIn : unmanaged where KIn : struct, IScalarKind<TIn> where TOut : unmanaged where KOut : struct, IScalarKind<TOut>
    {
        for (int i = KernelCache.First; i < r.IntLength; i += KernelCache.Step) r[i] = default(KOut).From(default(KIn).ToDouble(x[i]));
    }

    /// <summary>r[i] = x[i] (a copy).</summary>
    public static void Copy<T>(ArrayView<T> x, ArrayView<T> r) where T : unmanaged
    {
        for (int i = KernelCache.First; i < r.IntLength; i += KernelCache.Step) r[i] = x[i];
    }

    /// <summary>
    /// r = c₀x₀ + c₁x₁ + … over the first <paramref name="terms"/> (1 to 4) arrays, added to r when
    /// <paramref name="accumulate"/> is 1: a linear combination of up to four arrays in one launch. The terms are
    /// added in order and rounded to T after each product and sum, as the CPU's combination rounds.
    /// </summary>
    public static void Combine<T, K>(ArrayView<T> x0, ArrayView<T> x1, ArrayView<T> x2, ArrayView<T> x3, ArrayView<T> r,
        Coefficients4 c, int terms, int accumulate)
        where T : unmanaged, IFloatingPointIeee754<T> where K : struct, IScalarKind<T>
    {
        K k = default;
        T c0 = k.From(c.C0), c1 = k.From(c.C1), c2 = k.From(c.C2), c3 = k.From(c.C3);
        for (int i = KernelCache.First; i < r.IntLength; i += KernelCache.Step)
        {
            T s = accumulate != 0 ? r[i] + c0 * x0[i] : c0 * x0[i];
            if (terms > 1) s += c1 * x1[i];
            if (terms > 2) s += c2 * x2[i];
            if (terms > 3) s += c3 * x3[i];
            r[i] = s;
        }
    }

    /// <summary>Rows of one-hot values: r[i, labels[i]] = 1, zero elsewhere (labels outside [0, classes) give a zero row).</summary>
    public static void OneHot<T, K>(ArrayView<long> labels, ArrayView<T> r, int classes)
        where T : unmanaged, IFloatingPointIeee754<T> where K : struct, IScalarKind<T>
    {
        for (int i = KernelCache.First; i < r.IntLength; i += KernelCache.Step)
        {
            int row = i / classes, column = i - row * classes;
            r[i] = labels[row] == column ? T.One : T.Zero;
        }
    }
}

/// <summary>The coefficients of a linear combination of up to four arrays (<see cref="ElementWise.Combine{T, K}"/>), passed by value.</summary>
public struct Coefficients4
{
    /// <summary>The coefficients in order; those past the combination's terms are ignored.</summary>
    public double C0, C1, C2, C3;
}
