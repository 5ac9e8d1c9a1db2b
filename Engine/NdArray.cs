using System.Globalization;
using Curvature.Kernels.Cpu;
using Curvature.Kernels;

namespace Curvature.Engine;

/// <summary>
/// The raw n-dimensional array: a shape, a dtype and contiguous row-major storage on one device, with no
/// derivative machinery (that lives in the Autodiff layer's Tensor). Reshape returns a view sharing the
/// storage; every other op returns a new array. Ops check their operands and name the op, both shapes and
/// dtypes, and what was expected when they do not fit.
/// </summary>
public sealed class NdArray
{
    internal NdArray(Storage storage, long offset, Shape shape)
    {
        Storage = storage;
        Offset = offset;
        Shape = shape;
    }

    /// <summary>Wraps device storage (offset in elements).</summary>
    public static NdArray FromStorage(Storage storage, Shape shape, long offset = 0)
    {
        if (offset < 0 || offset + shape.Size > storage.Length)
            throw new ArgumentException($"A view of shape {shape} at offset {offset} does not fit in storage of {storage.Length} elements.");
        return new NdArray(storage, offset, shape);
    }

    /// <summary>The storage this array views.</summary>
    public Storage Storage { get; }

    /// <summary>First element's index in <see cref="Storage"/>.</summary>
    public long Offset { get; }

    /// <summary>The shape.</summary>
    public Shape Shape { get; }

    /// <summary>Element type.</summary>
    public DType DType => Storage.DType;

    /// <summary>The device holding the storage.</summary>
    public Device Device => Storage.Device;

    /// <summary>Number of elements.</summary>
    public long Size => Shape.Size;

    /// <summary>Number of axes.</summary>
    public int Rank => Shape.Rank;

    /// <summary>
    /// The elements as a span (CPU arrays only). Valid while this array is reachable: large CPU buffers return to
    /// <see cref="HostMemoryPool"/> when their array is collected, so keep the array alive while using the span.
    /// </summary>
    public Span<T> Span<T>()
    {
        if (Storage is not CpuStorage cpu) throw new InvalidOperationException($"Span: the array is on {Device.Name}; read it with ToArray.");
        if (DTypeExtensions.Of<T>() != DType) throw new InvalidOperationException($"Span<{typeof(T).Name}>: the array holds {DType.Name()}.");
        return ((T[])cpu.Data).AsSpan(checked((int)Offset), checked((int)Size));
    }

    // ---------------------------------------------------------------- creation

    /// <summary>A copy of host data as an array of the given shape (on the CPU unless a device is given).</summary>
    public static NdArray FromArray<T>(T[] data, Shape shape, Device? device = null) where T : unmanaged
    {
        DTypeExtensions.Of<T>();
        if (data.LongLength != shape.Size)
            throw new ArgumentException($"FromArray: {data.Length} elements cannot fill shape {shape} ({shape.Size} elements).");
        return (device ?? CpuDevice.Instance).FromHost((T[])data.Clone(), shape);
    }

    /// <summary>A 1-D copy of host data.</summary>
    public static NdArray FromArray<T>(params T[] data) where T : unmanaged => FromArray(data, new Shape(data.Length));

    /// <summary>An array filled with <paramref name="value"/>.</summary>
    public static NdArray Full(Shape shape, double value, DType dtype = DType.Float32, Device? device = null) =>
        (device ?? CpuDevice.Instance).Full(shape, dtype, value);

    /// <summary>An array of zeros.</summary>
    public static NdArray Zeros(Shape shape, DType dtype = DType.Float32, Device? device = null) => Full(shape, 0, dtype, device);

    /// <summary>An array of ones.</summary>
    public static NdArray Ones(Shape shape, DType dtype = DType.Float32, Device? device = null) => Full(shape, 1, dtype, device);

    /// <summary>A rank-0 array.</summary>
    public static NdArray Scalar(double value, DType dtype = DType.Float32, Device? device = null) => Full(Shape.Scalar, value, dtype, device);

    /// <summary>Zeros of this array's shape, dtype and device.</summary>
    public NdArray ZerosLike() => Full(Shape, 0, DType, Device);

    /// <summary>Ones of this array's shape, dtype and device.</summary>
    public NdArray OnesLike() => Full(Shape, 1, DType, Device);

    // ---------------------------------------------------------------- reading

    /// <summary>The elements copied to a host array.</summary>
    public T[] ToArray<T>() where T : unmanaged
    {
        if (DTypeExtensions.Of<T>() != DType) throw new InvalidOperationException($"ToArray<{typeof(T).Name}>: the array holds {DType.Name()}; Cast it first.");
        return (T[])Device.ToHost(this);
    }

    /// <summary>This array on <paramref name="device"/>: itself when it is already there, else a copy (through host memory).</summary>
    public NdArray To(Device device) => device == Device ? this : device.FromHost(Device.ToHost(this), Shape);

    /// <summary>All elements as float64 on the host, whatever the dtype.</summary>
    public double[] ToDoubleArray() => DType switch
    {
        DType.Float64 => ToArray<double>(),
        _ => Cast(DType.Float64).ToArray<double>(),
    };

    /// <summary>The single element of a one-element array, as a double.</summary>
    public double ToScalar()
    {
        if (Size != 1) throw new InvalidOperationException($"ToScalar: the array has shape {Shape} ({Size} elements); expected exactly one.");
        return ToDoubleArray()[0];
    }

    /// <summary>Shape, dtype and device, and the values when there are few.</summary>
    public override string ToString()
    {
        string head = $"NdArray{Shape} {DType.Name()} on {Device.Name}";
        if (Size > 20) return head;
        return head + " {" + string.Join(", ", ToDoubleArray().Select(v => v.ToString("G6", CultureInfo.InvariantCulture))) + "}";
    }

    // ---------------------------------------------------------------- views and layout

    /// <summary>A view with another shape of the same size; one dimension may be −1 (inferred).</summary>
    public NdArray Reshape(params int[] shape)
    {
        var dims = (int[])shape.Clone();
        int infer = Array.IndexOf(dims, -1);
        if (infer >= 0)
        {
            long rest = 1;
            for (int i = 0; i < dims.Length; i++) if (i != infer) rest *= dims[i];
            if (rest == 0 || Size % rest != 0) throw new ArgumentException($"reshape: cannot infer a dimension to view shape {Shape} as [{string.Join(", ", shape)}].");
            dims[infer] = (int)(Size / rest);
        }
        var s = new Shape(dims);
        if (s.Size != Size) throw new ArgumentException($"reshape: shape {Shape} ({Size} elements) cannot be viewed as {s} ({s.Size} elements).");
        return new NdArray(Storage, Offset, s);
    }

    /// <summary>A view with another shape of the same size.</summary>
    public NdArray Reshape(Shape shape) => Reshape(shape.ToArray());

    /// <summary>A contiguous view of rows [start, start+count) along axis 0 (no copy).</summary>
    public NdArray Rows(int start, int count)
    {
        if (Rank == 0 || start < 0 || count < 0 || start + count > Shape[0])
            throw new ArgumentOutOfRangeException(nameof(start), $"rows: [{start}, {start + count}) is outside axis 0 of shape {Shape}.");
        var dims = Shape.ToArray();
        long rowSize = dims[0] == 0 ? 0 : Size / dims[0];
        dims[0] = count;
        return new NdArray(Storage, Offset + start * rowSize, new Shape(dims));
    }

    /// <summary>A fresh copy with its own storage.</summary>
    public NdArray Copy() => Device.Cast(this, DType);

    /// <summary>Converts to another dtype (a copy even when the dtype is the same).</summary>
    public NdArray Cast(DType dtype) => Device.Cast(this, dtype);

    /// <summary>Axes permuted: result axis i is this array's axis <paramref name="axes"/>[i].</summary>
    public NdArray Permute(params int[] axes)
    {
        if (axes.Length != Rank) throw new ArgumentException($"permute: {axes.Length} axes given for shape {Shape}; expected a permutation of 0..{Rank - 1}.");
        var norm = axes.Select(Shape.NormalizeAxis).ToArray();
        if (norm.Distinct().Count() != Rank) throw new ArgumentException($"permute: [{string.Join(", ", axes)}] is not a permutation of 0..{Rank - 1} for shape {Shape}.");
        return Device.Permute(this, norm);
    }

    /// <summary>The last two axes swapped.</summary>
    public NdArray Transpose()
    {
        if (Rank < 2) throw new ArgumentException($"transpose: shape {Shape} has fewer than two axes.");
        var axes = Enumerable.Range(0, Rank).ToArray();
        (axes[^1], axes[^2]) = (axes[^2], axes[^1]);
        return Device.Permute(this, axes);
    }

    /// <summary>Elements [start, start+length) along an axis (a copy).</summary>
    public NdArray Slice(int axis, int start, int length)
    {
        int a = Shape.NormalizeAxis(axis);
        if (start < 0 || length < 0 || start + length > Shape[a])
            throw new ArgumentOutOfRangeException(nameof(start), $"slice: [{start}, {start + length}) is outside axis {a} of shape {Shape}.");
        return Device.Slice(this, a, start, length);
    }

    /// <summary>Arrays joined along an axis; all other dimensions, the dtype and the device must agree.</summary>
    public static NdArray Concat(IReadOnlyList<NdArray> xs, int axis)
    {
        if (xs.Count == 0) throw new ArgumentException("concat: no arrays given.");
        var first = xs[0];
        int a = first.Shape.NormalizeAxis(axis);
        foreach (var x in xs)
        {
            bool ok = x.Rank == first.Rank && x.DType == first.DType && x.Device == first.Device;
            for (int i = 0; ok && i < x.Rank; i++) ok = i == a || x.Shape[i] == first.Shape[i];
            if (!ok) throw new ArgumentException($"concat: {x.Shape} {x.DType.Name()} on {x.Device.Name} does not fit {first.Shape} {first.DType.Name()} on {first.Device.Name} along axis {a}; expected equal other dimensions, dtype and device.");
        }
        return first.Device.Concat(xs.ToArray(), a);
    }

    /// <summary>Materialized broadcast to a larger shape.</summary>
    public NdArray BroadcastTo(Shape shape)
    {
        if (!Shape.BroadcastsTo(shape)) throw new ArgumentException($"broadcast_to: shape {Shape} does not broadcast to {shape}.");
        return Shape == shape ? this : Device.BroadcastTo(this, shape);
    }

    /// <summary>Sums over the axes along which <paramref name="shape"/> was broadcast to this array's shape.</summary>
    public NdArray SumTo(Shape shape)
    {
        if (!shape.BroadcastsTo(Shape)) throw new ArgumentException($"sum_to: shape {shape} does not broadcast to {Shape}, so {Shape} cannot be summed back to it.");
        if (shape == Shape) return this;
        int lead = Rank - shape.Rank;
        var axes = new List<int>();
        for (int i = 0; i < Rank; i++)
            if (i < lead || (shape[i - lead] == 1 && Shape[i] != 1)) axes.Add(i);
        return Device.Reduce(ReduceOp.Sum, RequireFloat("sum_to"), axes.ToArray()).Reshape(shape);
    }

    // ---------------------------------------------------------------- element-wise

    internal NdArray RequireFloat(string op)
    {
        if (!DType.IsFloat()) throw new ArgumentException($"{op}: expected a float32 or float64 array, got {DType.Name()} {Shape}.");
        return this;
    }

    /// <summary>Element-wise op(x).</summary>
    public NdArray Apply(UnaryOp op) => Device.Unary(op, RequireFloat(op.ToString().ToLowerInvariant()));

    /// <summary>Element-wise op(this, y) with NumPy broadcasting.</summary>
    public NdArray Apply(BinaryOp op, NdArray y)
    {
        string name = op.ToString().ToLowerInvariant();
        CheckPair(name, this, y);
        var shape = Shape.TryBroadcast(Shape, y.Shape)
            ?? throw new ArgumentException($"{name}: shapes {Shape} and {y.Shape} do not broadcast; expected equal trailing dimensions or 1.");
        return Device.Binary(op, this, y, shape);
    }

    /// <summary>Element-wise op(this, scalar), the scalar rounded to this array's dtype.</summary>
    public NdArray Apply(BinaryOp op, double y)
    {
        string name = op.ToString().ToLowerInvariant();
        if (!DType.IsFloat()) throw new ArgumentException($"{name}: operand dtype {DType.Name()} {Shape} with a scalar; expected a float dtype.");
        return Device.BinaryScalar(op, this, y);
    }

    internal static void CheckPair(string op, NdArray x, NdArray y)
    {
        if (x.Device != y.Device) throw new ArgumentException($"{op}: operands are on different devices ({x.Shape} on {x.Device.Name}, {y.Shape} on {y.Device.Name}); expected one device.");
        if (x.DType != y.DType || !x.DType.IsFloat())
            throw new ArgumentException($"{op}: operand dtypes {x.DType.Name()} {x.Shape} and {y.DType.Name()} {y.Shape}; expected the same float dtype.");
    }

    /// <summary>cond ≠ 0 ? x : y element-wise, with broadcasting.</summary>
    public static NdArray Where(NdArray cond, NdArray x, NdArray y)
    {
        CheckPair("where", x, y);
        CheckPair("where", cond, x);
        var shape = Shape.TryBroadcast(cond.Shape, x.Shape) is { } s1 ? Shape.TryBroadcast(s1, y.Shape) : null;
        if (shape is null) throw new ArgumentException($"where: shapes {cond.Shape}, {x.Shape} and {y.Shape} do not broadcast.");
        return x.Device.Where(cond, x, y, shape);
    }

    /// <summary>x + y.</summary>
    public static NdArray operator +(NdArray x, NdArray y) => x.Apply(BinaryOp.Add, y);
    /// <summary>x − y.</summary>
    public static NdArray operator -(NdArray x, NdArray y) => x.Apply(BinaryOp.Sub, y);
    /// <summary>x · y element-wise.</summary>
    public static NdArray operator *(NdArray x, NdArray y) => x.Apply(BinaryOp.Mul, y);
    /// <summary>x / y.</summary>
    public static NdArray operator /(NdArray x, NdArray y) => x.Apply(BinaryOp.Div, y);
    /// <summary>x + c.</summary>
    public static NdArray operator +(NdArray x, double c) => x.Apply(BinaryOp.Add, c);
    /// <summary>x − c.</summary>
    public static NdArray operator -(NdArray x, double c) => x.Apply(BinaryOp.Sub, c);
    /// <summary>x · c.</summary>
    public static NdArray operator *(NdArray x, double c) => x.Apply(BinaryOp.Mul, c);
    /// <summary>c · x.</summary>
    public static NdArray operator *(double c, NdArray x) => x.Apply(BinaryOp.Mul, c);
    /// <summary>x / c.</summary>
    public static NdArray operator /(NdArray x, double c) => x.Apply(BinaryOp.Div, c);
    /// <summary>−x.</summary>
    public static NdArray operator -(NdArray x) => x.Apply(UnaryOp.Neg);

    // ---------------------------------------------------------------- reductions

    /// <summary>Normalizes axes (negative from the end; none means all) to a sorted distinct list.</summary>
    public int[] NormalizeAxes(int[]? axes)
    {
        if (axes is null || axes.Length == 0) return Enumerable.Range(0, Rank).ToArray();
        var a = axes.Select(Shape.NormalizeAxis).Distinct().Order().ToArray();
        if (a.Length != axes.Length) throw new ArgumentException($"reduce: repeated axes [{string.Join(", ", axes)}] for shape {Shape}.");
        return a;
    }

    /// <summary>The shape after reducing <paramref name="axes"/> (sorted, normalized).</summary>
    public Shape ReducedShape(int[] axes, bool keepDims)
    {
        var dims = new List<int>();
        for (int i = 0; i < Rank; i++)
        {
            if (Array.IndexOf(axes, i) < 0) dims.Add(Shape[i]);
            else if (keepDims) dims.Add(1);
        }
        return new Shape(dims.ToArray());
    }

    /// <summary>Reduction over axes (all when none are given).</summary>
    public NdArray Reduce(ReduceOp op, int[]? axes = null, bool keepDims = false)
    {
        RequireFloat(op.ToString().ToLowerInvariant());
        var a = NormalizeAxes(axes);
        if (op == ReduceOp.Max) foreach (var i in a) if (Shape[i] == 0) throw new ArgumentException($"max: axis {i} of shape {Shape} is empty.");
        var r = Device.Reduce(op, this, a);
        return keepDims ? r : r.Reshape(ReducedShape(a, false));
    }

    /// <summary>Σ over axes.</summary>
    public NdArray Sum(int[]? axes = null, bool keepDims = false) => Reduce(ReduceOp.Sum, axes, keepDims);

    /// <summary>max over axes.</summary>
    public NdArray Max(int[]? axes = null, bool keepDims = false) => Reduce(ReduceOp.Max, axes, keepDims);

    /// <summary>Σ xᵢyᵢ over all elements as a double (same shape, dtype and device required).</summary>
    public double Dot(NdArray y)
    {
        CheckPair("dot", this, y);
        if (Shape != y.Shape) throw new ArgumentException($"dot: shapes {Shape} and {y.Shape}; expected equal shapes.");
        return Device.Dot(this, y);
    }

    /// <summary>
    /// xᵢ·y for each array of <paramref name="xs"/>, bit for bit the values of <see cref="Dot"/>, read from the device
    /// at once (Gram-Schmidt's coefficients against a whole basis: one wait for the device, not one per vector).
    /// </summary>
    public static double[] Dots(IReadOnlyList<NdArray> xs, NdArray y)
    {
        foreach (var x in xs)
        {
            CheckPair("dots", x, y);
            if (x.Shape != y.Shape) throw new ArgumentException($"dots: shapes {x.Shape} and {y.Shape}; expected equal shapes.");
        }
        return xs.Count == 0 ? [] : y.Device.Dots(xs.ToArray(), y);
    }

    /// <summary>Σᵢ cᵢ·xᵢ for arrays of one shape, dtype and device, computed in one pass.</summary>
    public static NdArray LinearCombination(IReadOnlyList<NdArray> xs, IReadOnlyList<double> coefficients)
    {
        if (xs.Count == 0 || xs.Count != coefficients.Count)
            throw new ArgumentException($"linear_combination: {xs.Count} arrays and {coefficients.Count} coefficients; expected equally many, at least one.");
        foreach (var x in xs)
        {
            CheckPair("linear_combination", xs[0], x);
            if (x.Shape != xs[0].Shape) throw new ArgumentException($"linear_combination: shapes {xs[0].Shape} and {x.Shape}; expected one shape.");
        }
        return xs[0].Device.LinearCombination(xs.ToArray(), coefficients.ToArray());
    }

    // ---------------------------------------------------------------- linear algebra

    /// <summary>
    /// op(this)·op(b) over the last two axes (op = transpose when the flag is set); leading axes are a
    /// batch and must be equal.
    /// </summary>
    public NdArray MatMul(NdArray b, bool transA = false, bool transB = false) => Device.MatMul(this, b, transA, transB, MatMulShape(b, transA, transB));

    /// <summary>op(this)·op(b) + op(a2)·op(b2) with one pair of transposes (a2 shaped as this, b2 as b): a bilinear JVP's two terms.</summary>
    public NdArray MatMulSum(NdArray b, NdArray a2, NdArray b2, bool transA = false, bool transB = false)
    {
        foreach (var other in new[] { a2, b2 }) CheckPair("matmul", this, other);
        if (a2.Shape != Shape || b2.Shape != b.Shape)
            throw new ArgumentException($"matmul: pairs {Shape}·{b.Shape} and {a2.Shape}·{b2.Shape}; expected the same shapes.");
        return Device.MatMulSum(this, b, a2, b2, transA, transB, MatMulShape(b, transA, transB));
    }

    private Shape MatMulShape(NdArray b, bool transA, bool transB)
    {
        CheckPair("matmul", this, b);
        if (Rank < 2 || b.Rank != Rank)
            throw new ArgumentException($"matmul: shapes {Shape} and {b.Shape}; expected two arrays of the same rank ≥ 2.");
        for (int i = 0; i < Rank - 2; i++)
            if (Shape[i] != b.Shape[i]) throw new ArgumentException($"matmul: batch axes of {Shape} and {b.Shape} differ; expected equal leading dimensions.");
        int m = transA ? Shape[^1] : Shape[^2], ka = transA ? Shape[^2] : Shape[^1];
        int kb = transB ? b.Shape[^1] : b.Shape[^2], n = transB ? b.Shape[^2] : b.Shape[^1];
        if (ka != kb)
            throw new ArgumentException($"matmul: inner dimensions differ for {Shape}{(transA ? "ᵀ" : "")} · {b.Shape}{(transB ? "ᵀ" : "")} ({ka} vs {kb}).");
        var dims = Shape.ToArray();
        dims[^2] = m; dims[^1] = n;
        return new Shape(dims);
    }

    // ---------------------------------------------------------------- indexing

    /// <summary>Rows of this [rows, width] table picked by int64 indices; shape indices.Shape + [width].</summary>
    public NdArray Gather(NdArray indices)
    {
        if (Rank != 2 || indices.DType != DType.Int64 || indices.Device != Device)
            throw new ArgumentException($"gather: table {DType.Name()} {Shape}, indices {indices.DType.Name()} {indices.Shape}; expected a 2-D table and int64 indices on {Device.Name}.");
        return Device.Gather(this, indices);
    }

    /// <summary>A zero [rows, width] table with each row of <paramref name="updates"/> added at its index.</summary>
    public static NdArray ScatterAdd(NdArray indices, NdArray updates, int rows)
    {
        if (indices.DType != DType.Int64 || !updates.DType.IsFloat() || updates.Rank != indices.Rank + 1
            || !updates.Shape.Take(indices.Rank).SequenceEqual(indices.Shape) || indices.Device != updates.Device)
            throw new ArgumentException($"scatter_add: indices {indices.DType.Name()} {indices.Shape}, updates {updates.DType.Name()} {updates.Shape}; expected int64 indices and float updates of shape indices.Shape + [width].");
        return updates.Device.ScatterAdd(indices, updates, rows);
    }
}
