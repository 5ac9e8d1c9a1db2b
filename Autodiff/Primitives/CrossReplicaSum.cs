using Curvature.Engine;

namespace Curvature.Autodiff.Primitives;

/// <summary>
/// The sum of an array over the replicas of a data-parallel group (every replica holds the same shape and receives
/// the same sum). Each replica differentiates its own loss term ℓ_r, and the group's objective is Σ_r w_r·ℓ_r with
/// w_r the replica's share of the batch; its gradients are later combined as Σ_r w_r·∇ℓ_r. So the rules are
/// JVP: ẏ = Σ_r ẋ_r (the tangent is one global direction, each replica holding its part), and
/// VJP: x̄_r = (Σ_q w_q·ȳ_q) / w_r, which makes w_r·x̄_r the true cotangent of the group's objective; with equal
/// shares it is the plain sum. Both rules are this primitive again, so the VJP's own derivative (a Hessian-vector
/// product through synchronized BatchNorm) follows. Every replica must apply it in the same order.
/// </summary>
public sealed class CrossReplicaSum(IReplicaGroup group) : Primitive
{
    /// <summary>The replicas.</summary>
    public IReplicaGroup Group { get; } = group;
    /// <inheritdoc/>
    public override string Name => "cross_replica_sum";
    /// <inheritdoc/>
    protected internal override NdArray Forward(NdArray[] x) => Group.Sum(x[0]);
    /// <summary>Never deferred: a collective must run when every replica reaches it, not when (or whether) one replica reads it.</summary>
    protected internal override bool JvpReadsOutput => true;
    /// <inheritdoc/>
    protected internal override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y) =>
        // Every replica must take part in every sum: a zero tangent here is still contributed.
        Apply(xDot[0] ?? (Tensor)x[0].Data.ZerosLike());
    /// <inheritdoc/>
    protected internal override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed) =>
        [Apply(yBar * Group.Share) * (1 / Group.Share)];
}

/// <summary>The replicas of a data-parallel group as <see cref="CrossReplicaSum"/> sees them.</summary>
public interface IReplicaGroup
{
    /// <summary>This replica's share w_r of the batch (the weights sum to one over the group).</summary>
    double Share { get; }
    /// <summary>The element-wise sum of <paramref name="x"/> over the replicas (a collective: every replica calls it in the same order).</summary>
    NdArray Sum(NdArray x);
}
