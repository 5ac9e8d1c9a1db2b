using Curvature.Engine;

namespace Curvature.Autodiff;

/// <summary>
/// A differentiable operation: a raw forward computation on arrays, a JVP rule and a VJP rule. The rules are
/// written with other primitives (never raw kernels), so running a VJP on values that carry tangents
/// differentiates the backward pass itself: the tangent of a gradient is a Hessian-vector product.
/// </summary>
public abstract class Primitive
{
    /// <summary>The op's name, used in messages and in the verification table.</summary>
    public abstract string Name { get; }

    /// <summary>The forward computation on raw arrays (all derivative levels stripped).</summary>
    protected internal abstract NdArray Forward(NdArray[] x);

    /// <summary>
    /// The tangent of the output from the primals <paramref name="x"/>, their tangents (null = zero) and
    /// the output primal <paramref name="y"/>; null when the tangent is zero.
    /// </summary>
    protected internal abstract Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y);

    /// <summary>
    /// The cotangents of the inputs from the output's cotangent <paramref name="yBar"/>; entries whose
    /// <paramref name="needed"/> flag is false may be null, as may those of non-differentiable inputs.
    /// </summary>
    protected internal abstract Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed);

    /// <summary>
    /// <see cref="Vjp"/> with the cotangents a backward sweep has already summed for some inputs: where
    /// <paramref name="partial"/>[j] is given (and needed[j] holds), entry j of the result is that sum plus this op's
    /// cotangent, never null. A sweep sums the cotangents of a value with several uses; an op whose cotangent comes
    /// out of a pass that takes an addend (a <see cref="Primitives.ScaleShift"/>) overrides this to fold the sum
    /// into that pass, saving an add's three memory streams. The default adds afterwards.
    /// </summary>
    protected internal virtual Tensor?[] VjpAccumulating(Tensor[] x, Tensor y, Tensor yBar, bool[] needed, Tensor?[] partial) =>
        AddPartials(Vjp(x, y, yBar, needed), partial);

    /// <summary>Adds each given partial sum to its cotangent (taking the sum alone where the cotangent is zero, null).</summary>
    protected static Tensor?[] AddPartials(Tensor?[] bars, Tensor?[] partial)
    {
        for (int j = 0; j < bars.Length; j++)
            if (partial[j] is { } sum) bars[j] = bars[j] is { } b ? sum + b : sum;
        return bars;
    }

    /// <summary>
    /// The partial sums a fused rule did not fold in, for <see cref="AddPartials"/>: <paramref name="partial"/>
    /// without the entries at <paramref name="folded"/>.
    /// </summary>
    protected static Tensor?[] Remaining(Tensor?[] partial, params int[] folded)
    {
        var rest = (Tensor?[])partial.Clone();
        foreach (int j in folded) rest[j] = null;
        return rest;
    }

    /// <summary>
    /// Whether <see cref="Jvp"/> reads its output primal y. Those that do not (the bilinear products) may have y
    /// deferred inside <see cref="DeferringPrimals"/>: computed when something reads it, never if nothing does.
    /// </summary>
    protected internal virtual bool JvpReadsOutput => true;

    private static readonly AsyncLocal<bool> deferring = new();

    /// <summary>
    /// Until disposed, on this async flow, the primals of tangent-carrying results of primitives whose JVP does not
    /// read them are computed only when read. A Hessian-vector product is the tangent of the gradient: the gradient's
    /// own value — one product of every three per weight in the sweep — is then never computed unless asked for.
    /// </summary>
    internal static IDisposable DeferringPrimals()
    {
        bool previous = deferring.Value;
        deferring.Value = true;
        return new DeferralScope(previous);
    }

    private sealed class DeferralScope(bool previous) : IDisposable
    {
        public void Dispose() => deferring.Value = previous;
    }

    /// <summary>Floating-point operations of one forward computation (default: one per output element).</summary>
    protected internal virtual long Flops(NdArray[] x, NdArray y) => y.Size;

    /// <summary>Whether the op is a matrix product or convolution, counted into <see cref="FlopCounter.ProductFlops"/>.</summary>
    protected internal virtual bool IsProduct => false;

    /// <summary>Applies the op, stripping one level of derivative information per call (see <see cref="Tensor"/>).</summary>
    public Tensor Apply(params Tensor[] inputs)
    {
        int tag = 0;
        Tensor? lead = null;
        foreach (var x in inputs)
            if (x.tag > tag) { tag = x.tag; lead = x; }
        if (lead is null)
        {
            var raw = new NdArray[inputs.Length];
            for (int i = 0; i < raw.Length; i++) raw[i] = inputs[i].Data;
            var profile = OpProfile.Current;
            long start = profile is null ? 0 : System.Diagnostics.Stopwatch.GetTimestamp();
            var result = Forward(raw);
            FlopCounter.Current?.Add(Flops(raw, result), IsProduct);
            profile?.Add(Name, System.Diagnostics.Stopwatch.GetTimestamp() - start, Flops(raw, result));
            return Tensor.Constant(result);
        }

        var primals = new Tensor[inputs.Length];
        bool innermost = true;
        for (int i = 0; i < inputs.Length; i++)
        {
            primals[i] = inputs[i].tag == tag ? inputs[i].primal! : inputs[i];
            innermost &= primals[i].IsConstant;
        }
        var y = lead.kind == Tensor.Kind.Forward && innermost && !JvpReadsOutput && deferring.Value
            ? Tensor.Deferred(() => Apply(primals).Data)
            : Apply(primals);

        if (lead.kind == Tensor.Kind.Forward)
        {
            var tangents = new Tensor?[inputs.Length];
            for (int i = 0; i < inputs.Length; i++) tangents[i] = inputs[i].tag == tag ? inputs[i].tangent : null;
            var yDot = Jvp(primals, tangents, y);
            return yDot is null ? y : Tensor.Dual(y, yDot, tag);
        }
        return Tensor.Reverse(y, new ReverseNode(this, inputs, primals, y), tag);
    }

    /// <summary>
    /// The non-zero terms of a bilinear op's tangent over its pairs (a, b, a₂, b₂, …): (ȧ, b) and (a, ḃ) for each
    /// pair whose tangents are given, in order, so that f(ẋ) = Σ f(term).
    /// </summary>
    protected static List<(Tensor A, Tensor B)> BilinearTerms(Tensor[] x, Tensor?[] xDot)
    {
        var terms = new List<(Tensor A, Tensor B)>(4);
        for (int p = 0; p < x.Length; p += 2)
        {
            if (xDot[p] is { } aDot) terms.Add((aDot, x[p + 1]));
            if (xDot[p + 1] is { } bDot) terms.Add((x[p], bDot));
        }
        return terms;
    }

    /// <summary>
    /// The JVP of a fused primitive whose values are those of <paramref name="reference"/>, a composition of other
    /// primitives: that composition's own tangent (a null tangent counts as zero). For the rules that only higher
    /// derivatives reach, where the fused kernel's speed no longer matters and a second derivation could only err.
    /// </summary>
    protected static Tensor ReferenceJvp(Func<Tensor[], Tensor> reference, Tensor[] x, Tensor?[] xDot) =>
        Derivatives.Jvp(reference, x, x.Select((t, i) => xDot[i] ?? NdArray.Zeros(t.Shape, t.DType, t.Device)).ToArray()).Tangent;

    /// <summary>The VJP of a fused primitive from its <paramref name="reference"/> composition (see <see cref="ReferenceJvp"/>).</summary>
    protected static Tensor?[] ReferenceVjp(Func<Tensor[], Tensor> reference, Tensor[] x, Tensor yBar) =>
        Derivatives.Vjp(reference, x, yBar).Cotangents;

    /// <summary>Sum of two possibly-zero (null) tangents.</summary>
    protected static Tensor? AddOrNull(Tensor? a, Tensor? b) => a is null ? b : b is null ? a : a + b;

    /// <summary>A constant 0-d zero of the dtype and device of <paramref name="like"/>.</summary>
    protected static Tensor ZeroLike(Tensor like) => NdArray.Scalar(0, like.DType, like.Device);

    /// <summary><paramref name="t"/> summed back to <paramref name="shape"/> when it was broadcast.</summary>
    protected static Tensor SumBack(Tensor t, Shape shape) => t.Shape == shape ? t : t.SumTo(shape);
}
