using Curvature.Autodiff.Primitives;
using Curvature.Engine;
using Curvature.Kernels.Cpu;
using Curvature.Kernels;

namespace Curvature.Autodiff;

public sealed partial class Tensor
{
    private Tensor Scalar(double value) => NdArray.Scalar(value, DType, Device);

    // ------------------------------------------------------------ arithmetic (broadcasting)

    /// <summary>x + y.</summary>
    public static Tensor operator +(Tensor x, Tensor y) => Add.Instance.Apply(x, y);
    /// <summary>x − y.</summary>
    public static Tensor operator -(Tensor x, Tensor y) => Subtract.Instance.Apply(x, y);
    /// <summary>x ⊙ y.</summary>
    public static Tensor operator *(Tensor x, Tensor y) => Multiply.Instance.Apply(x, y);
    /// <summary>x / y.</summary>
    public static Tensor operator /(Tensor x, Tensor y) => Divide.Instance.Apply(x, y);
    /// <summary>−x.</summary>
    public static Tensor operator -(Tensor x) => Negate.Instance.Apply(x);
    /// <summary>x + c.</summary>
    public static Tensor operator +(Tensor x, double c) => x + x.Scalar(c);
    /// <summary>c + x.</summary>
    public static Tensor operator +(double c, Tensor x) => x.Scalar(c) + x;
    /// <summary>x − c.</summary>
    public static Tensor operator -(Tensor x, double c) => x - x.Scalar(c);
    /// <summary>c − x.</summary>
    public static Tensor operator -(double c, Tensor x) => x.Scalar(c) - x;
    /// <summary>x · c.</summary>
    public static Tensor operator *(Tensor x, double c) => x * x.Scalar(c);
    /// <summary>c · x.</summary>
    public static Tensor operator *(double c, Tensor x) => x.Scalar(c) * x;
    /// <summary>x / c.</summary>
    public static Tensor operator /(Tensor x, double c) => x * x.Scalar(1.0 / c);
    /// <summary>c / x.</summary>
    public static Tensor operator /(double c, Tensor x) => x.Scalar(c) / x;

    // ------------------------------------------------------------ element-wise functions

    /// <summary>exp x.</summary>
    public Tensor Exp() => Primitives.Exp.Instance.Apply(this);
    /// <summary>ln x.</summary>
    public Tensor Log() => Primitives.Log.Instance.Apply(this);
    /// <summary>tanh x.</summary>
    public Tensor Tanh() => Primitives.Tanh.Instance.Apply(this);
    /// <summary>√x.</summary>
    public Tensor Sqrt() => Primitives.Sqrt.Instance.Apply(this);
    /// <summary>xᵖ for a constant p.</summary>
    public Tensor Pow(double p) => new Power(p).Apply(this);
    /// <summary>x².</summary>
    public Tensor Square() => this * this;
    /// <summary>max(x, 0).</summary>
    public Tensor Relu() => Primitives.Relu.Instance.Apply(this);
    /// <summary>max(x, y) element-wise.</summary>
    public Tensor Maximum(Tensor y) => Primitives.Maximum.Instance.Apply(this, y);
    /// <summary>erf x.</summary>
    public Tensor Erf() => Primitives.Erf.Instance.Apply(this);
    /// <summary>The exact GELU, x·Φ(x) = ½x(1 + erf(x/√2)) (fused; PyTorch's default, not the tanh approximation).</summary>
    public Tensor Gelu() => Primitives.Gelu.Instance.Apply(this);
    /// <summary>
    /// (x − μ)/√(σ² + ε) with a mean and biased variance per group, the group axes being [groupStart, groupEnd)
    /// and the statistics reducing over the rest (fused; see <see cref="Primitives.Normalize"/>).
    /// </summary>
    public Tensor Normalize(int groupStart, int groupEnd, double epsilon) => new Normalize(groupStart, groupEnd, epsilon).Apply(this);

    /// <summary>1 / (1 + exp(−x)) (composite).</summary>
    public Tensor Sigmoid() => 1.0 / (1.0 + (-this).Exp());

    /// <summary>x where cond ≠ 0, else y (cond is treated as a constant).</summary>
    public static Tensor Where(Tensor cond, Tensor x, Tensor y) => Primitives.Where.Instance.Apply(cond.Detach(), x, y);

    // ------------------------------------------------------------ comparisons (constants: no derivative)

    private Tensor Compare(BinaryOp op, Tensor y) => Constant(Data.Apply(op, y.Data));
    /// <summary>1 where x &gt; y, else 0 (a constant).</summary>
    public Tensor Greater(Tensor y) => Compare(BinaryOp.Greater, y);
    /// <summary>1 where x ≥ y, else 0 (a constant).</summary>
    public Tensor GreaterEqual(Tensor y) => Compare(BinaryOp.GreaterEqual, y);
    /// <summary>1 where x &lt; y, else 0 (a constant).</summary>
    public Tensor Less(Tensor y) => Compare(BinaryOp.Less, y);
    /// <summary>1 where x ≤ y, else 0 (a constant).</summary>
    public Tensor LessEqual(Tensor y) => Compare(BinaryOp.LessEqual, y);
    /// <summary>1 where x = y, else 0 (a constant).</summary>
    public Tensor EqualTo(Tensor y) => Compare(BinaryOp.Equal, y);

    // ------------------------------------------------------------ reductions

    /// <summary>Σ over axes (all when none are given).</summary>
    public Tensor Sum(int[]? axes = null, bool keepDims = false) => new Sum(Data.NormalizeAxes(axes), keepDims).Apply(this);

    /// <summary>Mean over axes (all when none are given).</summary>
    public Tensor Mean(int[]? axes = null, bool keepDims = false)
    {
        var a = Data.NormalizeAxes(axes);
        long n = 1;
        foreach (var i in a) n *= Shape[i];
        return Sum(a, keepDims) * (1.0 / n);
    }

    /// <summary>max over axes (all when none are given); ties share the derivative equally.</summary>
    public Tensor Max(int[]? axes = null, bool keepDims = false) => new Max(Data.NormalizeAxes(axes), keepDims).Apply(this);

    /// <summary>Broadcast to a larger shape (identity when the shape already matches).</summary>
    public Tensor BroadcastTo(Shape shape)
    {
        if (Shape == shape) return this;
        if (!Shape.BroadcastsTo(shape)) throw new ArgumentException($"broadcast_to: shape {Shape} does not broadcast to {shape}.");
        return new BroadcastTo(shape).Apply(this);
    }

    /// <summary>Summed back to a shape that broadcasts to this one (identity when equal).</summary>
    public Tensor SumTo(Shape shape)
    {
        if (Shape == shape) return this;
        if (!shape.BroadcastsTo(Shape)) throw new ArgumentException($"sum_to: shape {shape} does not broadcast to {Shape}.");
        return new SumTo(shape).Apply(this);
    }

    // ------------------------------------------------------------ layout

    /// <summary>A view with another shape; one dimension may be −1.</summary>
    public Tensor Reshape(params int[] shape)
    {
        var target = Data.Reshape(shape).Shape;
        return target == Shape ? this : new Reshape(target).Apply(this);
    }

    /// <summary>A view with another shape.</summary>
    public Tensor Reshape(Shape shape) => Reshape(shape.ToArray());

    /// <summary>Axes permuted: result axis i is axis <paramref name="axes"/>[i].</summary>
    public Tensor Permute(params int[] axes)
    {
        if (axes.Length != Rank || axes.Select(Shape.NormalizeAxis).Distinct().Count() != Rank)
            throw new ArgumentException($"permute: [{string.Join(", ", axes)}] is not a permutation of the axes of {Shape}.");
        return new Permute(axes.Select(Shape.NormalizeAxis).ToArray()).Apply(this);
    }

    /// <summary>The last two axes swapped.</summary>
    public Tensor Transpose()
    {
        if (Rank < 2) throw new ArgumentException($"transpose: shape {Shape} has fewer than two axes.");
        var axes = Enumerable.Range(0, Rank).ToArray();
        (axes[^1], axes[^2]) = (axes[^2], axes[^1]);
        return Permute(axes);
    }

    /// <summary>Elements [start, start+length) along an axis.</summary>
    public Tensor Slice(int axis, int start, int length)
    {
        int a = Shape.NormalizeAxis(axis);
        if (start < 0 || length < 0 || start + length > Shape[a])
            throw new ArgumentOutOfRangeException(nameof(start), $"slice: [{start}, {start + length}) is outside axis {a} of shape {Shape}.");
        return new Slice(a, start, length).Apply(this);
    }

    /// <summary>Tensors joined along an axis.</summary>
    public static Tensor Concat(IReadOnlyList<Tensor> xs, int axis)
    {
        if (xs.Count == 0) throw new ArgumentException("concat: no tensors given.");
        return new Concat(xs[0].Shape.NormalizeAxis(axis)).Apply(xs.ToArray());
    }

    // ------------------------------------------------------------ indexing

    /// <summary>Rows of this [rows, width] table picked by int64 indices (embedding lookup).</summary>
    public Tensor Gather(Tensor indices) => Primitives.Gather.Instance.Apply(this, indices);

    /// <summary>A zero [rows, width] table with each row of <paramref name="updates"/> added at its index.</summary>
    public static Tensor ScatterAdd(Tensor indices, Tensor updates, int rows) => new ScatterAdd(rows).Apply(indices, updates);

    // ------------------------------------------------------------ linear algebra

    /// <summary>op(this)·op(b) over the last two axes, batched over equal leading axes.</summary>
    public Tensor MatMul(Tensor b, bool transA = false, bool transB = false) => new MatMul(transA, transB).Apply(this, b);

    // ------------------------------------------------------------ convolution

    /// <summary>
    /// 2-D convolution (PyTorch's cross-correlation) of this [n, c, h, w] input with <paramref name="weight"/>
    /// [o, c, kh, kw], giving [n, o, oh, ow]: one GEMM per image with the im2col columns packed on the fly
    /// (see <see cref="Convolution2d"/>).
    /// </summary>
    public Tensor Conv2d(Tensor weight, int stride = 1, int padding = 0) =>
        new Convolution2d(ConvolutionRole.Forward, Data.ConvolutionWith(weight.Shape, stride, padding)).Apply(this, weight);

    // ------------------------------------------------------------ softmax family

    /// <summary>log softmax over the last axis.</summary>
    public Tensor LogSoftmax() => Primitives.LogSoftmax.Instance.Apply(this);

    /// <summary>softmax over the last axis (composite: exp of log softmax).</summary>
    public Tensor Softmax() => Primitives.Softmax.Instance.Apply(this);
}
