using System.Runtime.Intrinsics;
using System.Numerics;
using System.Numerics.Tensors;

namespace Curvature.Kernels.Cpu;

/// <summary>
/// Element-wise kernels over spans, through <see cref="TensorPrimitives"/>, with NumPy broadcasting given
/// as element strides (0 on a broadcast axis). Long arrays are cut into fixed-size chunks that run in
/// parallel; every element is computed alone, so the thread count never changes a result.
/// </summary>
public static class ElementWise
{
    private const int Chunk = 1 << 15;

    /// <summary>dst = op(x), element by element.</summary>
    public static void Unary<T>(UnaryOp op, ReadOnlySpan<T> x, Span<T> dst) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (x.Length <= Chunk) { UnarySpan(op, x, dst); return; }
        unsafe
        {
            fixed (T* px = x) fixed (T* pd = dst)
            {
                T* ppx = px, ppd = pd;
                Parallelism.ForChunks(x.Length, Chunk, (s, n) => UnarySpan(op, new ReadOnlySpan<T>(ppx + s, n), new Span<T>(ppd + s, n)));
            }
        }
    }

    private static void UnarySpan<T>(UnaryOp op, ReadOnlySpan<T> x, Span<T> d) where T : unmanaged, IFloatingPointIeee754<T>
    {
        switch (op)
        {
            case UnaryOp.Neg: TensorPrimitives.Negate(x, d); break;
            case UnaryOp.Exp: TensorPrimitives.Exp(x, d); break;
            case UnaryOp.Log: TensorPrimitives.Log(x, d); break;
            case UnaryOp.Tanh when typeof(T) == typeof(float):
                FastTanh.Apply(System.Runtime.InteropServices.MemoryMarshal.Cast<T, float>(x), System.Runtime.InteropServices.MemoryMarshal.Cast<T, float>(d));
                break;
            case UnaryOp.Tanh: TensorPrimitives.Tanh(x, d); break;
            case UnaryOp.Sqrt: TensorPrimitives.Sqrt(x, d); break;
            case UnaryOp.Relu: TensorPrimitives.Max(x, T.Zero, d); break;
            case UnaryOp.Abs: TensorPrimitives.Abs(x, d); break;
            case UnaryOp.Square: TensorPrimitives.Multiply(x, x, d); break;
            case UnaryOp.Reciprocal: TensorPrimitives.Reciprocal(x, d); break;
            case UnaryOp.Gelu or UnaryOp.GeluDerivative when typeof(T) == typeof(float):
                Gaussian.Apply(op == UnaryOp.Gelu, System.Runtime.InteropServices.MemoryMarshal.Cast<T, float>(x), System.Runtime.InteropServices.MemoryMarshal.Cast<T, float>(d));
                break;
            case UnaryOp.GeluSecondDerivative when typeof(T) == typeof(float):
                Gaussian.SecondDerivative(System.Runtime.InteropServices.MemoryMarshal.Cast<T, float>(x), System.Runtime.InteropServices.MemoryMarshal.Cast<T, float>(d));
                break;
            case UnaryOp.GeluSecondDerivative:
                for (int i = 0; i < x.Length; i++) d[i] = T.CreateTruncating(ScalarMath.GeluSecondDerivative(double.CreateTruncating(x[i])));
                break;
            case UnaryOp.Gelu:
                for (int i = 0; i < x.Length; i++) d[i] = T.CreateTruncating(ScalarMath.Gelu(double.CreateTruncating(x[i])));
                break;
            case UnaryOp.GeluDerivative:
                for (int i = 0; i < x.Length; i++) d[i] = T.CreateTruncating(ScalarMath.GeluDerivative(double.CreateTruncating(x[i])));
                break;
            case UnaryOp.Erf when typeof(T) == typeof(float):
                FastErf.Apply(System.Runtime.InteropServices.MemoryMarshal.Cast<T, float>(x), System.Runtime.InteropServices.MemoryMarshal.Cast<T, float>(d));
                break;
            case UnaryOp.Erf:
                for (int i = 0; i < x.Length; i++) d[i] = T.CreateTruncating(ErrorFunction.Erf(double.CreateTruncating(x[i])));
                break;
            default: throw new ArgumentOutOfRangeException(nameof(op), op, "Unknown unary op.");
        }
    }

    /// <summary>
    /// dst[outShape] = op(x, y) with broadcasting: <paramref name="xStrides"/> and <paramref name="yStrides"/>
    /// are the element strides of x and y over the output's axes, 0 where an operand is broadcast.
    /// </summary>
    public static void Binary<T>(BinaryOp op, ReadOnlySpan<T> x, int[] xStrides, ReadOnlySpan<T> y, int[] yStrides,
        Span<T> dst, int[] outShape) where T : unmanaged, IFloatingPointIeee754<T>
    {
        Coalesce(outShape, xStrides, yStrides, out int[] shape, out int[] xs, out int[] ys);
        int rank = shape.Length;
        int inner = rank == 0 ? 1 : shape[rank - 1];
        int xi = rank == 0 ? 1 : xs[rank - 1], yi = rank == 0 ? 1 : ys[rank - 1];
        long rows = 1;
        for (int i = 0; i < rank - 1; i++) rows *= shape[i];
        unsafe
        {
            fixed (T* px = x) fixed (T* py = y) fixed (T* pd = dst)
            {
                T* ppx = px, ppy = py, ppd = pd;
                void Rows(long r0, int count)
                {
                    for (long r = r0; r < r0 + count; r++)
                    {
                        long xo = 0, yo = 0, rem = r;
                        for (int a = rank - 2; a >= 0; a--)
                        {
                            long idx = rem % shape[a]; rem /= shape[a];
                            xo += idx * xs[a]; yo += idx * ys[a];
                        }
                        var d = new Span<T>(ppd + r * inner, inner);
                        if (inner >= Chunk && rows == 1)
                        {
                            Parallelism.ForChunks(inner, Chunk, (s, n) => BinaryRow(op, ppx + xo + s * xi, xi, ppy + yo + s * yi, yi, new Span<T>(ppd + s, n)));
                        }
                        else BinaryRow(op, ppx + xo, xi, ppy + yo, yi, d);
                    }
                }
                long rowsPerChunk = Math.Max(1, Chunk / Math.Max(1, inner));
                if (rows * inner <= Chunk || rows == 1) Rows(0, (int)rows);
                else Parallelism.ForChunks(rows, (int)rowsPerChunk, Rows);
            }
        }
    }

    private static unsafe void BinaryRow<T>(BinaryOp op, T* x, int xStride, T* y, int yStride, Span<T> d)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int n = d.Length;
        bool xs = xStride == 0, ys = yStride == 0;
        var xv = new ReadOnlySpan<T>(x, xs ? 1 : n);
        var yv = new ReadOnlySpan<T>(y, ys ? 1 : n);
        if (xs && ys) { d.Fill(Scalar(op, *x, *y)); return; }
        switch (op)
        {
            case BinaryOp.Add:
                if (xs) TensorPrimitives.Add(yv, *x, d); else if (ys) TensorPrimitives.Add(xv, *y, d); else TensorPrimitives.Add(xv, yv, d);
                return;
            case BinaryOp.Sub:
                if (xs) TensorPrimitives.Subtract(*x, yv, d); else if (ys) TensorPrimitives.Subtract(xv, *y, d); else TensorPrimitives.Subtract(xv, yv, d);
                return;
            case BinaryOp.Mul:
                if (xs) TensorPrimitives.Multiply(yv, *x, d); else if (ys) TensorPrimitives.Multiply(xv, *y, d); else TensorPrimitives.Multiply(xv, yv, d);
                return;
            case BinaryOp.Div:
                if (xs) TensorPrimitives.Divide(*x, yv, d); else if (ys) TensorPrimitives.Divide(xv, *y, d); else TensorPrimitives.Divide(xv, yv, d);
                return;
            case BinaryOp.Max:
                if (xs) TensorPrimitives.Max(yv, *x, d); else if (ys) TensorPrimitives.Max(xv, *y, d); else TensorPrimitives.Max(xv, yv, d);
                return;
            case BinaryOp.Min:
                if (xs) TensorPrimitives.Min(yv, *x, d); else if (ys) TensorPrimitives.Min(xv, *y, d); else TensorPrimitives.Min(xv, yv, d);
                return;
            case BinaryOp.MaskPositive when !xs && !ys:
                MaskPositive(x, y, d);
                return;
            case BinaryOp.MulOneMinusSquare when !xs && !ys:
                // Three vector passes over one destination chunk that stays in cache: d = y·(1 − x²).
                TensorPrimitives.Multiply(xv, xv, d);
                TensorPrimitives.Subtract(T.One, d, d);
                TensorPrimitives.Multiply(d, yv, d);
                return;
            case BinaryOp.Pow:
                if (xs) TensorPrimitives.Pow(*x, yv, d); else if (ys) TensorPrimitives.Pow(xv, *y, d); else TensorPrimitives.Pow(xv, yv, d);
                return;
            case BinaryOp.Greater or BinaryOp.GreaterEqual or BinaryOp.Less or BinaryOp.LessEqual or BinaryOp.Equal:
                Compare(op, x, xs, y, ys, d);
                return;
            default:
                for (int i = 0; i < n; i++) d[i] = Scalar(op, xs ? *x : x[i], ys ? *y : y[i]);
                return;
        }
    }

    /// <summary>
    /// Comparisons as 1/0 masks (ReLU's derivative, Maximum's), vectorized: a compare and a select per vector
    /// instead of a switch per element. Either operand may be a broadcast scalar.
    /// </summary>
    private static unsafe void Compare<T>(BinaryOp op, T* x, bool xScalar, T* y, bool yScalar, Span<T> d) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int n = d.Length, i = 0;
        fixed (T* pd = d)
        {
            if (Vector512.IsHardwareAccelerated)
            {
                var one = Vector512<T>.One;
                for (; i + Vector512<T>.Count <= n; i += Vector512<T>.Count)
                {
                    var a = xScalar ? Vector512.Create(*x) : Vector512.Load(x + i);
                    var b = yScalar ? Vector512.Create(*y) : Vector512.Load(y + i);
                    var mask = op switch
                    {
                        BinaryOp.Greater => Vector512.GreaterThan(a, b),
                        BinaryOp.GreaterEqual => Vector512.GreaterThanOrEqual(a, b),
                        BinaryOp.Less => Vector512.LessThan(a, b),
                        BinaryOp.LessEqual => Vector512.LessThanOrEqual(a, b),
                        _ => Vector512.Equals(a, b),
                    };
                    (mask & one).Store(pd + i);
                }
            }
            else if (Vector256.IsHardwareAccelerated)
            {
                var one = Vector256<T>.One;
                for (; i + Vector256<T>.Count <= n; i += Vector256<T>.Count)
                {
                    var a = xScalar ? Vector256.Create(*x) : Vector256.Load(x + i);
                    var b = yScalar ? Vector256.Create(*y) : Vector256.Load(y + i);
                    var mask = op switch
                    {
                        BinaryOp.Greater => Vector256.GreaterThan(a, b),
                        BinaryOp.GreaterEqual => Vector256.GreaterThanOrEqual(a, b),
                        BinaryOp.Less => Vector256.LessThan(a, b),
                        BinaryOp.LessEqual => Vector256.LessThanOrEqual(a, b),
                        _ => Vector256.Equals(a, b),
                    };
                    (mask & one).Store(pd + i);
                }
            }
            for (; i < n; i++) pd[i] = Scalar(op, xScalar ? *x : x[i], yScalar ? *y : y[i]);
        }
    }

    /// <summary>d = x &gt; 0 ? g : 0, one vectorized pass (no mask written).</summary>
    private static unsafe void MaskPositive<T>(T* x, T* g, Span<T> d) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int n = d.Length, i = 0;
        fixed (T* pd = d)
        {
            if (Vector512.IsHardwareAccelerated)
                for (; i + Vector512<T>.Count <= n; i += Vector512<T>.Count)
                    (Vector512.GreaterThan(Vector512.Load(x + i), Vector512<T>.Zero) & Vector512.Load(g + i)).Store(pd + i);
            else if (Vector256.IsHardwareAccelerated)
                for (; i + Vector256<T>.Count <= n; i += Vector256<T>.Count)
                    (Vector256.GreaterThan(Vector256.Load(x + i), Vector256<T>.Zero) & Vector256.Load(g + i)).Store(pd + i);
            for (; i < n; i++) pd[i] = x[i] > T.Zero ? g[i] : T.Zero;
        }
    }

    /// <summary>op(x, y) on two scalars.</summary>
    public static T Scalar<T>(BinaryOp op, T x, T y) where T : IFloatingPointIeee754<T> => op switch
    {
        BinaryOp.Add => x + y,
        BinaryOp.Sub => x - y,
        BinaryOp.Mul => x * y,
        BinaryOp.Div => x / y,
        BinaryOp.Max => T.IsNaN(x) || T.IsNaN(y) ? T.NaN : T.Max(x, y),
        BinaryOp.Min => T.IsNaN(x) || T.IsNaN(y) ? T.NaN : T.Min(x, y),
        BinaryOp.Pow => T.Pow(x, y),
        BinaryOp.Greater => x > y ? T.One : T.Zero,
        BinaryOp.GreaterEqual => x >= y ? T.One : T.Zero,
        BinaryOp.Less => x < y ? T.One : T.Zero,
        BinaryOp.LessEqual => x <= y ? T.One : T.Zero,
        BinaryOp.Equal => x == y ? T.One : T.Zero,
        BinaryOp.MulOneMinusSquare => y * (T.One - x * x),
        BinaryOp.MaskPositive => x > T.Zero ? y : T.Zero,
        _ => throw new ArgumentOutOfRangeException(nameof(op), op, "Unknown binary op."),
    };

    /// <summary>
    /// dst = Σᵢ cᵢ·xᵢ over equally long arrays, one pass per cache-sized chunk (each xᵢ is read once), terms
    /// added in index order whatever the thread count.
    /// </summary>
    public static unsafe void LinearCombination<T>(T*[] xs, T[] coefficients, T* dst, long length) where T : unmanaged, IFloatingPointIeee754<T>
    {
        Parallelism.ForChunks(length, 1 << 14, (s, n) =>
        {
            var d = new Span<T>(dst + s, n);
            TensorPrimitives.Multiply(new ReadOnlySpan<T>(xs[0] + s, n), coefficients[0], d);
            for (int i = 1; i < xs.Length; i++) TensorPrimitives.MultiplyAdd(new ReadOnlySpan<T>(xs[i] + s, n), coefficients[i], d, d);
        });
    }

    /// <summary>
    /// dst[outShape] = cond ≠ 0 ? x : y with broadcasting: each operand is read through its element strides over
    /// the output's axes (0 where broadcast). Rows of the last axis run in parallel chunks, vectorized where all
    /// three operands are contiguous or constant along it.
    /// </summary>
    public static unsafe void Where<T>(ReadOnlySpan<T> cond, int[] cStrides, ReadOnlySpan<T> x, int[] xStrides, ReadOnlySpan<T> y, int[] yStrides,
        Span<T> dst, int[] outShape) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int rank = outShape.Length;
        if (rank == 0) { dst[0] = cond[0] != T.Zero ? x[0] : y[0]; return; }
        int inner = outShape[rank - 1];
        int ci = cStrides[rank - 1], xi = xStrides[rank - 1], yi = yStrides[rank - 1];
        long rows = 1;
        for (int a = 0; a < rank - 1; a++) rows *= outShape[a];
        fixed (T* pc0 = cond) fixed (T* px0 = x) fixed (T* py0 = y) fixed (T* pd0 = dst)
        {
            T* pc = pc0, px = px0, py = py0, pd = pd0;
            void Rows(long r0, int count)
            {
                for (long r = r0; r < r0 + count; r++)
                {
                    long co = 0, xo = 0, yo = 0, rem = r;
                    for (int a = rank - 2; a >= 0; a--)
                    {
                        long idx = rem % outShape[a]; rem /= outShape[a];
                        co += idx * cStrides[a]; xo += idx * xStrides[a]; yo += idx * yStrides[a];
                    }
                    T* c = pc + co, xp = px + xo, yp = py + yo, d = pd + r * inner;
                    int i = 0;
                    if (Vector256.IsHardwareAccelerated && ci == 1 && xi is 0 or 1 && yi is 0 or 1)
                    {
                        var zero = Vector256<T>.Zero;
                        for (; i + Vector256<T>.Count <= inner; i += Vector256<T>.Count)
                        {
                            var keep = ~Vector256.Equals(Vector256.Load(c + i), zero);
                            var a = xi == 0 ? Vector256.Create(*xp) : Vector256.Load(xp + i);
                            var b = yi == 0 ? Vector256.Create(*yp) : Vector256.Load(yp + i);
                            Vector256.ConditionalSelect(keep, a, b).Store(d + i);
                        }
                    }
                    for (; i < inner; i++) d[i] = c[(long)i * ci] != T.Zero ? xp[(long)i * xi] : yp[(long)i * yi];
                }
            }
            long rowsPerChunk = Math.Max(1, Chunk / Math.Max(1, inner));
            if (rows * inner <= Chunk) Rows(0, (int)rows);
            else Parallelism.ForChunks(rows, (int)rowsPerChunk, Rows);
        }
    }

    /// <summary>
    /// Merges adjacent axes that are contiguous in the output and in both operands (or broadcast in the
    /// same way), so the inner loop runs over the longest possible row.
    /// </summary>
    public static void Coalesce(int[] shape, int[] xStrides, int[] yStrides, out int[] outShape, out int[] xs, out int[] ys)
    {
        var s = new List<int>(); var a = new List<int>(); var b = new List<int>();
        for (int i = 0; i < shape.Length; i++)
        {
            if (shape[i] == 1) continue;
            if (s.Count > 0)
            {
                int last = s.Count - 1;
                if (a[last] == xStrides[i] * shape[i] && b[last] == yStrides[i] * shape[i])
                {
                    s[last] *= shape[i]; a[last] = xStrides[i]; b[last] = yStrides[i];
                    continue;
                }
            }
            s.Add(shape[i]); a.Add(xStrides[i]); b.Add(yStrides[i]);
        }
        if (s.Count == 0) { s.Add(1); a.Add(0); b.Add(0); }
        outShape = s.ToArray(); xs = a.ToArray(); ys = b.ToArray();
    }
}
