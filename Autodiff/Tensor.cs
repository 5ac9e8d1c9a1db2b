using Curvature.Engine;

namespace Curvature.Autodiff;

/// <summary>
/// A differentiable value. It is one of three things (after DiffSharp): a constant wrapping an
/// <see cref="NdArray"/>; a forward-mode dual (primal, tangent) tagged with the level of the derivative that
/// introduced it; or a reverse-mode node (primal, the primitive that made it, its inputs) tagged likewise.
/// Each primitive strips exactly one level (the highest tag among its inputs), so nested derivatives never
/// confuse their perturbations. A tensor that carries no tangent costs nothing extra.
/// </summary>
public sealed partial class Tensor
{
    internal enum Kind { Constant, Forward, Reverse }

    private static int lastTag;

    internal readonly Kind kind;
    internal readonly int tag;
    internal readonly Tensor? primal;
    internal readonly Tensor? tangent;
    internal readonly ReverseNode? node;

    private NdArray? data;
    private Func<NdArray>? pending;

    private Tensor(NdArray data)
    {
        kind = Kind.Constant;
        this.data = data;
    }

    private Tensor(Func<NdArray> compute)
    {
        kind = Kind.Constant;
        pending = compute;
    }

    private Tensor(Kind kind, int tag, Tensor primal, Tensor? tangent, ReverseNode? node)
    {
        this.kind = kind;
        this.tag = tag;
        this.primal = primal;
        this.tangent = tangent;
        this.node = node;
        data = primal.data; // null while the primal is deferred: read through it then
    }

    /// <summary>A constant (no derivative information).</summary>
    public static Tensor Constant(NdArray data) => new(data);

    /// <summary>
    /// A constant whose value is computed the first time it is read (see <see cref="Primitive.Apply"/>: inside a
    /// Hessian-vector product the gradient's own value is never read, so its products are never computed).
    /// </summary>
    internal static Tensor Deferred(Func<NdArray> compute) => new(compute);

    /// <summary>Wraps an array as a constant tensor.</summary>
    public static implicit operator Tensor(NdArray data) => new(data);

    internal static Tensor Dual(Tensor primal, Tensor tangent, int tag) => new(Kind.Forward, tag, primal, tangent, null);

    internal static Tensor Reverse(Tensor primal, ReverseNode? node, int tag) => new(Kind.Reverse, tag, primal, null, node);

    /// <summary>A fresh nesting level for a derivative; later (inner) derivatives get larger tags.</summary>
    internal static int NewTag() => Interlocked.Increment(ref lastTag);

    /// <summary>The value with every level of derivative information stripped.</summary>
    public NdArray Data => data ?? Resolve();

    private NdArray Resolve()
    {
        if (pending is not { } compute) return data ?? (data = primal!.Data);
        // Two threads reading at once may both compute: the values are equal, the first one stays.
        var value = Interlocked.CompareExchange(ref data, compute(), null) ?? data!;
        pending = null; // drops what the computation captured
        return value;
    }

    /// <summary>Shape of the value.</summary>
    public Shape Shape => Data.Shape;

    /// <summary>Element type of the value.</summary>
    public DType DType => Data.DType;

    /// <summary>Device holding the value.</summary>
    public Device Device => Data.Device;

    /// <summary>Number of axes.</summary>
    public int Rank => Data.Rank;

    /// <summary>True when the tensor carries no derivative information.</summary>
    public bool IsConstant => kind == Kind.Constant;

    /// <summary>The same value as a constant: derivatives do not flow through it.</summary>
    public Tensor Detach() => IsConstant ? this : new Tensor(Data);

    /// <summary>The elements copied to a host array.</summary>
    public T[] ToArray<T>() where T : unmanaged => Data.ToArray<T>();

    /// <summary>The single element as a double.</summary>
    public double ToScalar() => Data.ToScalar();

    /// <summary>Shape, dtype, kind.</summary>
    public override string ToString() => $"Tensor{Shape} {DType.Name()} ({kind}{(tag > 0 ? $", level {tag}" : "")})";
}

/// <summary>What a reverse-mode tensor remembers: the primitive, its inputs and their primals, its output primal.</summary>
internal sealed class ReverseNode(Primitive op, Tensor[] inputs, Tensor[] primals, Tensor output)
{
    public Primitive Op { get; } = op;
    public Tensor[] Inputs { get; } = inputs;
    public Tensor[] Primals { get; } = primals;
    public Tensor Output { get; } = output;
}
