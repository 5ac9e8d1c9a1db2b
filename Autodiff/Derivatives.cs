using Curvature.Engine;

namespace Curvature.Autodiff;

/// <summary>What <see cref="Derivatives.Hvp(Func{Tensor[], Tensor}, Tensor[], Tensor[])"/> returns: f(w), ∇f(w) and H·v.</summary>
/// <param name="Value">f(w).</param>
/// <param name="Gradient">∇f(w), one tensor per argument.</param>
/// <param name="Product">H(w)·v, one tensor per argument.</param>
public sealed record HvpResult(Tensor Value, Tensor[] Gradient, Tensor[] Product);

/// <summary>
/// Derivatives of functions of tensors: reverse mode (<see cref="Grad(Func{Tensor, Tensor}, Tensor)"/>,
/// <see cref="Vjp(Func{Tensor[], Tensor}, Tensor[], Tensor)"/>), forward mode
/// (<see cref="Jvp(Func{Tensor[], Tensor}, Tensor[], Tensor[])"/>) and their composition: the exact
/// Hessian-vector product as the JVP of the gradient (forward-over-reverse), Hv = d/dt ∇f(w + t v) at t = 0.
/// Each call opens a fresh nesting level, so they compose to any order without perturbation confusion.
/// </summary>
public static class Derivatives
{
    // ------------------------------------------------------------ reverse mode

    /// <summary>f(xs) and the cotangents ȳᵀ·∂f/∂xᵢ for a given output cotangent ȳ.</summary>
    public static (Tensor Value, Tensor[] Cotangents) Vjp(Func<Tensor[], Tensor> f, Tensor[] xs, Tensor yBar) =>
        Reverse(f, xs, y => y.Shape == yBar.Shape ? yBar
            : throw new ArgumentException($"vjp: the cotangent has shape {yBar.Shape} but f returned {y.Shape}."));

    /// <summary>f(x) and ȳᵀ·∂f/∂x.</summary>
    public static (Tensor Value, Tensor Cotangent) Vjp(Func<Tensor, Tensor> f, Tensor x, Tensor yBar)
    {
        var (v, bars) = Vjp(xs => f(xs[0]), [x], yBar);
        return (v, bars[0]);
    }

    /// <summary>f(xs) and ∇f for a scalar-valued f.</summary>
    public static (Tensor Value, Tensor[] Gradient) ValueAndGrad(Func<Tensor[], Tensor> f, Tensor[] xs) =>
        Reverse(f, xs, y => y.Data.Size == 1 ? y.Data.OnesLike()
            : throw new ArgumentException($"grad: f must return a single element, got shape {y.Shape}."));

    /// <summary>f(x) and ∇f(x) for a scalar-valued f.</summary>
    public static (Tensor Value, Tensor Gradient) ValueAndGrad(Func<Tensor, Tensor> f, Tensor x)
    {
        var (v, g) = ValueAndGrad(xs => f(xs[0]), [x]);
        return (v, g[0]);
    }

    /// <summary>
    /// Runs f on fresh reverse-mode leaves of a new level, seeds the output with the cotangent that
    /// <paramref name="seed"/> gives for it, and sweeps back. Arguments f does not depend on get zeros.
    /// </summary>
    private static (Tensor Value, Tensor[] Cotangents) Reverse(Func<Tensor[], Tensor> f, Tensor[] xs, Func<Tensor, Tensor> seed)
    {
        int tag = Tensor.NewTag();
        var leaves = xs.Select(x => Tensor.Reverse(x, null, tag)).ToArray();
        var y = f(leaves);
        var yBar = seed(y);
        bool connected = y.tag == tag && y.kind == Tensor.Kind.Reverse;
        var adjoints = connected ? Backpropagate(TopologicalOrder([y], tag), [y], [yBar], tag, leaves) : [];
        var bars = leaves.Select((l, i) => adjoints.TryGetValue(l, out var b) ? b : (Tensor)xs[i].Data.ZerosLike()).ToArray();
        return (connected ? y.primal! : y, bars);
    }

    /// <summary>∇f(xs) for a scalar-valued f.</summary>
    public static Tensor[] Grad(Func<Tensor[], Tensor> f, Tensor[] xs) => ValueAndGrad(f, xs).Gradient;

    /// <summary>∇f(x) for a scalar-valued f.</summary>
    public static Tensor Grad(Func<Tensor, Tensor> f, Tensor x) => ValueAndGrad(f, x).Gradient;

    /// <summary>
    /// Reverse sweep from the <paramref name="roots"/>, seeded with <paramref name="seeds"/>, over the nodes of level
    /// <paramref name="tag"/> in <paramref name="order"/> (theirs, topological) taken backwards. Cotangents are
    /// tensors, so when they carry tangents of an outer level this sweep is itself differentiated forward.
    /// Intermediate cotangents are released as soon as they are used; the graph itself is left intact.
    /// </summary>
    internal static Dictionary<Tensor, Tensor> Backpropagate(List<Tensor> order, Tensor[] roots, Tensor[] seeds, int tag, Tensor[] leaves)
    {
        var adjoints = new Dictionary<Tensor, Tensor>(ReferenceEqualityComparer.Instance);
        for (int r = 0; r < roots.Length; r++)
            adjoints[roots[r]] = adjoints.TryGetValue(roots[r], out var seeded) ? seeded + seeds[r] : seeds[r];
        var keep = new HashSet<Tensor>(leaves, ReferenceEqualityComparer.Instance);
        for (int i = order.Count - 1; i >= 0; i--)
        {
            var t = order[i];
            var node = t.node;
            if (node is null || !adjoints.TryGetValue(t, out var bar)) continue;
            var needed = new bool[node.Inputs.Length];
            bool any = false;
            for (int j = 0; j < needed.Length; j++)
            {
                needed[j] = node.Inputs[j].tag == tag && node.Inputs[j].kind == Tensor.Kind.Reverse;
                any |= needed[j];
            }
            if (!any) continue;
            // An input that already has a partial sum passes it to the rule, which may fold the add into its own
            // pass; an input used twice by this node takes its second cotangent by a plain add.
            Tensor?[]? partial = null;
            for (int j = 0; j < needed.Length; j++)
            {
                if (!needed[j] || !adjoints.TryGetValue(node.Inputs[j], out var sum) || FirstUse(node.Inputs, j) != j) continue;
                partial ??= new Tensor?[needed.Length];
                partial[j] = sum;
            }
            var bars = partial is null ? node.Op.Vjp(node.Primals, node.Output, bar, needed) : node.Op.VjpAccumulating(node.Primals, node.Output, bar, needed, partial);
            for (int j = 0; j < needed.Length; j++)
            {
                if (!needed[j] || bars[j] is not { } b) continue;
                var input = node.Inputs[j];
                adjoints[input] = partial?[j] is not null ? b : adjoints.TryGetValue(input, out var acc) ? acc + b : b;
            }
            if (!keep.Contains(t)) adjoints.Remove(t);
        }
        return adjoints;
    }

    private static int FirstUse(Tensor[] inputs, int j)
    {
        for (int k = 0; k < j; k++)
            if (ReferenceEquals(inputs[k], inputs[j])) return k;
        return j;
    }

    /// <summary>The nodes of level <paramref name="tag"/> that the roots depend on, each after its inputs.</summary>
    internal static List<Tensor> TopologicalOrder(Tensor[] roots, int tag)
    {
        var order = new List<Tensor>();
        var visited = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
        var stack = new Stack<(Tensor Node, int Next)>();
        foreach (var root in roots)
        {
            if (!visited.Add(root)) continue;
            stack.Push((root, 0));
            Visit(stack, visited, order, tag);
        }
        return order;
    }

    private static void Visit(Stack<(Tensor Node, int Next)> stack, HashSet<Tensor> visited, List<Tensor> order, int tag)
    {
        while (stack.Count > 0)
        {
            var (t, next) = stack.Pop();
            var inputs = t.node?.Inputs;
            if (inputs is not null && next < inputs.Length)
            {
                stack.Push((t, next + 1));
                var child = inputs[next];
                if (child.tag == tag && child.kind == Tensor.Kind.Reverse && visited.Add(child)) stack.Push((child, 0));
                continue;
            }
            order.Add(t);
        }
    }

    // ------------------------------------------------------------ forward mode

    /// <summary>f(xs) and the directional derivative Σᵢ ∂f/∂xᵢ·ẋᵢ (one forward pass).</summary>
    public static (Tensor Value, Tensor Tangent) Jvp(Func<Tensor[], Tensor> f, Tensor[] xs, Tensor[] xDots)
    {
        var (ys, dots) = JvpMany(a => [f(a)], xs, xDots);
        return (ys[0], dots[0]);
    }

    /// <summary>f(x) and ∂f/∂x·ẋ.</summary>
    public static (Tensor Value, Tensor Tangent) Jvp(Func<Tensor, Tensor> f, Tensor x, Tensor xDot) => Jvp(a => f(a[0]), [x], [xDot]);

    /// <summary>The JVP of a function with several outputs.</summary>
    public static (Tensor[] Values, Tensor[] Tangents) JvpMany(Func<Tensor[], Tensor[]> f, Tensor[] xs, Tensor[] xDots)
    {
        if (xs.Length != xDots.Length) throw new ArgumentException($"jvp: {xs.Length} arguments but {xDots.Length} tangents.");
        for (int i = 0; i < xs.Length; i++)
            if (xs[i].Shape != xDots[i].Shape || xs[i].DType != xDots[i].DType)
                throw new ArgumentException($"jvp: argument {i} is {xs[i].DType.Name()} {xs[i].Shape} but its tangent is {xDots[i].DType.Name()} {xDots[i].Shape}; expected the same shape and dtype.");
        int tag = Tensor.NewTag();
        var duals = xs.Select((x, i) => Tensor.Dual(x, xDots[i], tag)).ToArray();
        var ys = f(duals);
        var values = new Tensor[ys.Length];
        var tangents = new Tensor[ys.Length];
        for (int i = 0; i < ys.Length; i++)
        {
            if (ys[i].tag == tag && ys[i].kind == Tensor.Kind.Forward) { values[i] = ys[i].primal!; tangents[i] = ys[i].tangent!; }
            else { values[i] = ys[i]; tangents[i] = ys[i].Data.ZerosLike(); }
        }
        return (values, tangents);
    }

    // ------------------------------------------------------------ second order

    /// <summary>
    /// f(w), ∇f(w) and the exact Hessian-vector product H(w)·v, as the JVP of the gradient along v
    /// (forward-over-reverse): one forward pass and one backward pass, each carrying tangents. The gradient is
    /// computed only if read: a weight's cotangent xᵀ·ȳ is a product whose tangent ẋᵀ·ȳ + xᵀ·ȳ̇ is H·v's share and
    /// whose own value nothing else needs, so a caller that reads only <see cref="HvpResult.Product"/> (Lanczos,
    /// power iteration) skips one product of every three per weight in the backward pass.
    /// </summary>
    public static HvpResult Hvp(Func<Tensor[], Tensor> f, Tensor[] w, Tensor[] v)
    {
        using var deferred = Primitive.DeferringPrimals();
        var (values, tangents) = JvpMany(ws =>
        {
            var (value, grad) = ValueAndGrad(f, ws);
            return [value, .. grad];
        }, w, v);
        return new HvpResult(values[0], values[1..], tangents[1..]);
    }

    /// <summary>
    /// The Hessian-vector product at w recorded as a graph for many products at the same point (a Lanczos run on
    /// one block): see <see cref="RecordedHvp"/>. The recording is one ordinary product, H·v, read from
    /// <see cref="RecordedHvp.First"/>.
    /// </summary>
    public static RecordedHvp RecordHvp(Func<Tensor[], Tensor> f, Tensor[] w, Tensor[] v)
    {
        if (w.Length != v.Length) throw new ArgumentException($"hvp: {w.Length} arguments but {v.Length} directions.");
        int tag = Tensor.NewTag();
        var leaves = v.Select(x => Tensor.Reverse(x.Detach(), null, tag)).ToArray();
        var product = Hvp(f, w, leaves).Product;
        return new RecordedHvp(tag, leaves, product);
    }

    /// <summary>H(w)·v for a function of one tensor.</summary>
    public static Tensor Hvp(Func<Tensor, Tensor> f, Tensor w, Tensor v) => Hvp(a => f(a[0]), [w], [v]).Product[0];
}
