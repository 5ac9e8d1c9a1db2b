using Curvature.Kernels.Cpu;
using Curvature.Kernels;

namespace Curvature.Engine;

/// <summary>
/// Where arrays live and ops run. Each op takes arrays on this device and returns a new one; the
/// <see cref="NdArray"/> methods validate shapes and types first, so a device only computes. The CPU device
/// is <see cref="CpuDevice"/>; GPU devices implement the same contract.
/// </summary>
public abstract class Device
{
    /// <summary>A short name (cpu, cuda:0, …) used in messages.</summary>
    public abstract string Name { get; }

    /// <summary>Allocates uninitialized storage.</summary>
    public abstract Storage Allocate(DType dtype, long length);

    /// <summary>
    /// An uninitialized contiguous array on this device: what a kernel outside Engine (an op family's or an optimizer's
    /// fused update) writes its result into.
    /// </summary>
    public NdArray NewArray(Shape shape, DType dtype) => new(Allocate(dtype, shape.Size), 0, shape);

    /// <summary>The error an op family (or fused update) raises on a device it has no lowering for, naming the op and the device.</summary>
    public NotSupportedException NoLowering(string op) => new($"{op}: no lowering for the device {Name}.");

    /// <summary>Copies host data to a new array on this device.</summary>
    public abstract NdArray FromHost(Array data, Shape shape);

    /// <summary>Copies an array's elements to a host array of its dtype.</summary>
    public abstract Array ToHost(NdArray x);

    /// <summary>An array filled with one value.</summary>
    public abstract NdArray Full(Shape shape, DType dtype, double value);

    /// <summary>Element-wise op(x).</summary>
    public abstract NdArray Unary(UnaryOp op, NdArray x);

    /// <summary>Element-wise op(x, y) with both broadcast to <paramref name="shape"/>.</summary>
    public abstract NdArray Binary(BinaryOp op, NdArray x, NdArray y, Shape shape);

    /// <summary>
    /// Element-wise op(x, c) for a scalar c, which is first rounded to x's dtype: the same values as
    /// <see cref="Binary"/> with a one-element array holding c, which is what it does by default. A device whose
    /// launches cost time of their own passes c to one kernel instead.
    /// </summary>
    public virtual NdArray BinaryScalar(BinaryOp op, NdArray x, double c) => Binary(op, x, Full(Shape.Scalar, x.DType, c), x.Shape);

    /// <summary>cond ≠ 0 ? x : y, all broadcast to <paramref name="shape"/>.</summary>
    public abstract NdArray Where(NdArray cond, NdArray x, NdArray y, Shape shape);

    /// <summary>Reduces over the sorted, distinct <paramref name="axes"/>; the result keeps them as size 1.</summary>
    public abstract NdArray Reduce(ReduceOp op, NdArray x, int[] axes);

    /// <summary>Materializes x broadcast to <paramref name="shape"/>.</summary>
    public abstract NdArray BroadcastTo(NdArray x, Shape shape);

    /// <summary>op(a)·op(b) over the last two axes, with equal leading (batch) axes.</summary>
    public abstract NdArray MatMul(NdArray a, NdArray b, bool transA, bool transB, Shape shape);

    /// <summary>op(a)·op(b) + op(a2)·op(b2), one pair of transposes, into <paramref name="shape"/>: a bilinear JVP's two terms; by default two products and an add.</summary>
    public virtual NdArray MatMulSum(NdArray a, NdArray b, NdArray a2, NdArray b2, bool transA, bool transB, Shape shape) =>
        MatMul(a, b, transA, transB, shape) + MatMul(a2, b2, transA, transB, shape);

    /// <summary>Axes permuted: result axis i is x axis <paramref name="axes"/>[i].</summary>
    public abstract NdArray Permute(NdArray x, int[] axes);

    /// <summary>Elements [start, start+length) along an axis.</summary>
    public abstract NdArray Slice(NdArray x, int axis, int start, int length);

    /// <summary>Arrays joined along an axis.</summary>
    public abstract NdArray Concat(NdArray[] xs, int axis);

    /// <summary>Rows of a [rows, width] table picked by int64 indices: shape indices.Shape + [width].</summary>
    public abstract NdArray Gather(NdArray table, NdArray indices);

    /// <summary>A zero [rows, width] table with updates[i] added to row indices[i].</summary>
    public abstract NdArray ScatterAdd(NdArray indices, NdArray updates, int rows);

    /// <summary>Converts elements to another dtype.</summary>
    public abstract NdArray Cast(NdArray x, DType dtype);

    /// <summary>Draws from the Philox stream (key, counter offset).</summary>
    public abstract NdArray Random(RandomKind kind, ulong key, ulong offset, Shape shape, DType dtype, long high);

    /// <summary>Σᵢ cᵢ·xᵢ for arrays of one shape and dtype, in one pass (Gram-Schmidt, Ritz vectors).</summary>
    public abstract NdArray LinearCombination(NdArray[] xs, double[] coefficients);

    /// <summary>Σ xᵢyᵢ over all elements, accumulated in a fixed order, as a host double.</summary>
    public abstract double Dot(NdArray x, NdArray y);

    /// <summary>
    /// <see cref="Dot"/> of each of <paramref name="xs"/> with <paramref name="y"/>, the same values, read to the host
    /// together: a device that must wait for its queue to read a value waits once instead of once per product.
    /// </summary>
    public virtual double[] Dots(NdArray[] xs, NdArray y) => xs.Select(x => Dot(x, y)).ToArray();

    /// <inheritdoc/>
    public override string ToString() => Name;

    /// <summary>
    /// A reduction over the sorted <paramref name="axes"/> as runs of adjacent axes, last run first, each an
    /// [outer, length, inner] reduction of the previous result into a new array of the given shape (with the run's
    /// axes kept as size 1) made by <paramref name="run"/>. Reducing no axes returns a copy.
    /// </summary>
    protected static NdArray ReduceByRuns(NdArray x, int[] axes, Func<NdArray, Shape, (int Outer, int Length, int Inner), NdArray> run)
    {
        var current = x;
        var dims = x.Shape.ToArray();
        int i = axes.Length - 1;
        while (i >= 0)
        {
            int hi = axes[i], lo = hi;
            while (i > 0 && axes[i - 1] == lo - 1) { i--; lo--; }
            i--;
            long outer = 1, length = 1, inner = 1;
            for (int a = 0; a < lo; a++) outer *= dims[a];
            for (int a = lo; a <= hi; a++) { length *= dims[a]; dims[a] = 1; }
            for (int a = hi + 1; a < dims.Length; a++) inner *= dims[a];
            current = run(current, new Shape(dims), ((int)outer, (int)length, (int)inner));
        }
        return ReferenceEquals(current, x) ? x.Copy() : current;
    }

    /// <summary>The element counts before and after <paramref name="axis"/> (a slice or concatenation's blocks).</summary>
    protected static (int Outer, int Inner) Around(Shape s, int axis)
    {
        long outer = 1, inner = 1;
        for (int i = 0; i < axis; i++) outer *= s[i];
        for (int i = axis + 1; i < s.Rank; i++) inner *= s[i];
        return ((int)outer, (int)inner);
    }
}
