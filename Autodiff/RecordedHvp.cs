using Curvature.Engine;

namespace Curvature.Autodiff;

/// <summary>
/// One Hessian-vector product kept as a graph, so that further products at the same point skip its primal work.
/// The direction v is made a reverse-mode leaf of a level outside the product's own, so the product's tangent
/// computation — linear in v, with the primal activations and cotangents as its constant coefficients — is
/// recorded as it runs: a graph G with G(v) = H·v. Since H is symmetric, H·u = Gᵀu, a reverse sweep over G alone
/// (JAX's <c>linearize</c> then <c>linear_transpose</c>). A sweep costs the tangent passes of a product without
/// its forward pass and primal backward pass; for a block deep in a network, whose tangents start at its layer,
/// that is a fraction of a whole product. The price is memory: the graph holds the product's intermediates for
/// as long as this object lives.
/// </summary>
/// <remarks>
/// In exact arithmetic Gᵀu equals the forward-over-reverse product; in floating point the two round differently
/// (they sum the same terms in another order), and a sweep's products are symmetric only to that rounding.
/// </remarks>
public sealed class RecordedHvp
{
    private readonly int tag;
    private readonly Tensor[] leaves;
    private readonly Tensor[] outputs;
    private readonly Tensor[] roots;
    private readonly int[] rootIndex;
    private readonly List<Tensor> order;

    internal RecordedHvp(int tag, Tensor[] leaves, Tensor[] outputs)
    {
        this.tag = tag;
        this.leaves = leaves;
        this.outputs = outputs;
        First = outputs.Select(o => (Tensor)o.Data).ToArray();
        // Outputs that do not depend on v (a zero block of H) add nothing to the transposed sweep.
        var connected = Enumerable.Range(0, outputs.Length).Where(i => outputs[i].tag == tag && outputs[i].kind == Tensor.Kind.Reverse).ToArray();
        rootIndex = connected;
        roots = connected.Select(i => outputs[i]).ToArray();
        order = Derivatives.TopologicalOrder(roots, tag);
    }

    /// <summary>H·v for the direction the product was recorded with, one tensor per argument.</summary>
    public Tensor[] First { get; }

    /// <summary>Nodes in the recorded graph (each one primitive applied to tangents).</summary>
    public int Nodes => order.Count;

    /// <summary>H·u, one tensor per argument, by the transposed sweep over the recorded graph.</summary>
    public Tensor[] Apply(Tensor[] u)
    {
        if (u.Length != outputs.Length) throw new ArgumentException($"hvp: {outputs.Length} arguments but {u.Length} directions.");
        for (int i = 0; i < u.Length; i++)
            if (u[i].Shape != leaves[i].Shape || u[i].DType != leaves[i].DType)
                throw new ArgumentException($"hvp: direction {i} is {u[i].DType.Name()} {u[i].Shape}; expected {leaves[i].DType.Name()} {leaves[i].Shape}.");
        var seeds = rootIndex.Select(i => (Tensor)u[i].Data).ToArray();
        var adjoints = roots.Length == 0 ? [] : Derivatives.Backpropagate(order, roots, seeds, tag, leaves);
        return leaves.Select(l => adjoints.TryGetValue(l, out var b) ? (Tensor)b.Data : l.Data.ZerosLike()).ToArray();
    }
}
