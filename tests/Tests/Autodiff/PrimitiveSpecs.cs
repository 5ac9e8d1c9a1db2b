using Curvature.Autodiff;
using Curvature.Autodiff.Primitives;
using Curvature.Engine;
using FsCheck;
using FsCheck.Fluent;

namespace Curvature.Tests.Autodiff;

/// <summary>
/// One table of every primitive, each checked to second order in forward and reverse mode against central
/// finite differences (float64) on random inputs drawn by FsCheck; a meta-test fails when a primitive is
/// missing from the table.
/// </summary>
public class PrimitiveSpecs
{
    /// <summary>A row of the table: the primitive exercised, and a function of float64 inputs made from a seed.</summary>
    public sealed record Spec(Type Primitive, string Case, Func<RandomGenerator, NdArray[]> Inputs, Func<Tensor[], Tensor> F);

    private static NdArray N(RandomGenerator r, params int[] shape) => r.Normal(new Shape(shape), dtype: DType.Float64);
    private static NdArray Pos(RandomGenerator r, params int[] shape) => r.Uniform(new Shape(shape), 0.5, 2.0, DType.Float64);

    private static readonly NdArray Condition = NdArray.FromArray(new double[] { 1, 0, 0, 1, 1, 0, 1, 0, 0, 0, 1, 1 }, new Shape(3, 4));
    private static readonly NdArray Labels = NdArray.FromArray(new long[] { 2, 0, 4, 4 }, new Shape(4));
    private static readonly NdArray Indices = NdArray.FromArray(new long[] { 1, 4, 1, 0, 3, 1 }, new Shape(2, 3));

    // Fixed primals (x, γ, u) of the BatchNorm tangent primitives, for the rows that differentiate along the tangents
    // alone: the transposed sweep of a recorded product (RecordedHvp) reaches those VJPs with the primals constant.
    private static readonly RandomGenerator FixedDraw = new(91);
    private static readonly NdArray FixedX = N(FixedDraw, 3, 2, 2, 2) * 2.0 + 1.0, FixedGamma = N(FixedDraw, 2), FixedBeta = N(FixedDraw, 2), FixedU = N(FixedDraw, 3, 2, 2, 2) - 1.0, FixedMask = N(FixedDraw, 4, 5);

    public static readonly Spec[] Table =
    [
        new(typeof(Add), "broadcast [3,4]+[4]", r => [N(r, 3, 4), N(r, 4)], x => x[0] + x[1]),
        new(typeof(Add), "same shape", r => [N(r, 2, 3), N(r, 2, 3)], x => x[0] + x[1]),
        new(typeof(Subtract), "broadcast [3,4]-[3,1]", r => [N(r, 3, 4), N(r, 3, 1)], x => x[0] - x[1]),
        new(typeof(Multiply), "broadcast [2,3,4]*[3,1]", r => [N(r, 2, 3, 4), N(r, 3, 1)], x => x[0] * x[1]),
        new(typeof(Divide), "broadcast [3,4]/[4]", r => [N(r, 3, 4), Pos(r, 4)], x => x[0] / x[1]),
        new(typeof(Negate), "[5]", r => [N(r, 5)], x => -x[0]),
        new(typeof(Exp), "[2,3]", r => [N(r, 2, 3)], x => x[0].Exp()),
        new(typeof(Log), "positive [2,3]", r => [Pos(r, 2, 3)], x => x[0].Log()),
        new(typeof(Tanh), "[2,3]", r => [N(r, 2, 3)], x => x[0].Tanh()),
        new(typeof(TanhBackward), "g(1-y²), broadcast [3,4],[4]", r => [N(r, 3, 4), N(r, 4)], x => TanhBackward.Instance.Apply(x[0], x[1])),
        new(typeof(Erf), "[3,4] over ±3", r => [N(r, 3, 4) * 1.5], x => x[0].Erf()),
        new(typeof(Gelu), "[3,4] over ±3", r => [N(r, 3, 4) * 1.5], x => x[0].Gelu()),
        new(typeof(GeluDerivative), "[3,4] over ±3", r => [N(r, 3, 4) * 1.5], x => GeluDerivative.Instance.Apply(x[0])),
        new(typeof(GeluSecondDerivative), "[3,4] over ±3", r => [N(r, 3, 4) * 1.5], x => GeluSecondDerivative.Instance.Apply(x[0])),
        new(typeof(Sqrt), "positive [2,3]", r => [Pos(r, 2, 3)], x => x[0].Sqrt()),
        new(typeof(Power), "x^3", r => [N(r, 2, 3)], x => x[0].Pow(3)),
        new(typeof(Power), "x^-1.5 positive", r => [Pos(r, 4)], x => x[0].Pow(-1.5)),
        new(typeof(Relu), "[3,4]", r => [N(r, 3, 4)], x => x[0].Relu()),
        new(typeof(ReluBackward), "g where x > 0, [3,4]", r => [N(r, 3, 4), N(r, 3, 4)], x => ReluBackward.Instance.Apply(x[0].Detach(), x[1])),
        new(typeof(Maximum), "broadcast [3,4],[4]", r => [N(r, 3, 4), N(r, 4)], x => x[0].Maximum(x[1])),
        new(typeof(Where), "broadcast where(c, [3,4], [4])", r => [N(r, 3, 4), N(r, 4)], x => Tensor.Where(Condition, x[0], x[1])),
        new(typeof(Sum), "axis 1 of [2,3,4]", r => [N(r, 2, 3, 4)], x => x[0].Sum([1])),
        new(typeof(Sum), "all, kept", r => [N(r, 2, 3)], x => x[0].Sum(null, true)),
        new(typeof(Max), "axes 0,2 of [2,3,4]", r => [N(r, 2, 3, 4)], x => x[0].Max([0, 2])),
        new(typeof(Max), "last axis, kept", r => [N(r, 3, 5)], x => x[0].Max([-1], true)),
        new(typeof(BroadcastTo), "[3,1] to [2,3,4]", r => [N(r, 3, 1)], x => x[0].BroadcastTo(new Shape(2, 3, 4))),
        new(typeof(SumTo), "[2,3,4] to [3,1]", r => [N(r, 2, 3, 4)], x => x[0].SumTo(new Shape(3, 1))),
        new(typeof(Reshape), "[2,3,4] to [6,4]", r => [N(r, 2, 3, 4)], x => x[0].Reshape(6, -1)),
        new(typeof(Permute), "[2,3,4] by (2,0,1)", r => [N(r, 2, 3, 4)], x => x[0].Permute(2, 0, 1)),
        new(typeof(Slice), "axis 1 [1,3) of [2,4,3]", r => [N(r, 2, 4, 3)], x => x[0].Slice(1, 1, 2)),
        new(typeof(Concat), "[2,3],[2,2] on axis 1", r => [N(r, 2, 3), N(r, 2, 2)], x => Tensor.Concat(x, 1)),
        new(typeof(Gather), "rows of [5,3] by [2,3] indices", r => [N(r, 5, 3)], x => x[0].Gather(Indices)),
        new(typeof(ScatterAdd), "[2,3,4] rows into [5,4]", r => [N(r, 2, 3, 4)], x => Tensor.ScatterAdd(Indices, x[0], 5)),
        // Three replicas holding the same x, each of share 1/3: the sum is 3x, and the rules' share weighting must
        // give the derivatives of 3x (the two-rank case runs under mpirun in DistributedCliTests).
        new(typeof(CrossReplicaSum), "[2,3] over 3 equal replicas", r => [N(r, 2, 3)], x => new CrossReplicaSum(new EqualReplicas(3)).Apply(x[0]) * x[0]),
        new(typeof(MatMul), "A·B", r => [N(r, 3, 4), N(r, 4, 5)], x => x[0].MatMul(x[1])),
        new(typeof(MatMul), "Aᵀ·B", r => [N(r, 4, 3), N(r, 4, 5)], x => x[0].MatMul(x[1], transA: true)),
        new(typeof(MatMul), "A·Bᵀ", r => [N(r, 3, 4), N(r, 5, 4)], x => x[0].MatMul(x[1], transB: true)),
        new(typeof(MatMul), "Aᵀ·Bᵀ", r => [N(r, 4, 3), N(r, 5, 4)], x => x[0].MatMul(x[1], true, true)),
        new(typeof(MatMul), "batched [2,3,4]·[2,4,5]", r => [N(r, 2, 3, 4), N(r, 2, 4, 5)], x => x[0].MatMul(x[1])),
        new(typeof(MatMul), "pair A·B + A₂·B₂", r => [N(r, 3, 4), N(r, 4, 5), N(r, 3, 4), N(r, 4, 5)], x => new MatMul(false, false).Apply(x[0], x[1], x[2], x[3])),
        new(typeof(MatMul), "pair Aᵀ·Bᵀ + A₂ᵀ·B₂ᵀ, batched", r => [N(r, 2, 4, 3), N(r, 2, 5, 4), N(r, 2, 4, 3), N(r, 2, 5, 4)], x => new MatMul(true, true).Apply(x[0], x[1], x[2], x[3])),
        new(typeof(Normalize), "batch-norm groups (axis 1) of [3,2,2,2]", r => [N(r, 3, 2, 2, 2)], x => x[0].Normalize(1, 2, 1e-5)),
        new(typeof(Normalize), "layer-norm groups (rows) of [2,3,5]", r => [N(r, 2, 3, 5)], x => x[0].Normalize(0, 2, 1e-5)),
        new(typeof(NormalizeJacobian), "J(x)·u, batch-norm groups", r => [N(r, 3, 2, 4), N(r, 3, 2, 4)], x => new NormalizeJacobian(1, 2, 1e-5).Apply(x[0], x[1])),
        new(typeof(NormalizeJacobian), "J(x)·u, layer-norm groups", r => [N(r, 4, 6), N(r, 4, 6)], x => new NormalizeJacobian(0, 1, 1e-3).Apply(x[0], x[1])),
        new(typeof(NormalizeJacobianTangent), "∂ₓ(Ju)[v] + Jw, batch-norm groups", r => [N(r, 3, 2, 4), N(r, 3, 2, 4), N(r, 3, 2, 4), N(r, 3, 2, 4), N(r, 3, 2, 4)],
            x => new NormalizeJacobianTangent(1, 2, 1e-5).Apply(x)),
        new(typeof(NormalizeJacobianTangent), "∂ₓ(Ju)[v], layer-norm groups", r => [N(r, 4, 6), N(r, 4, 6), N(r, 4, 6), N(r, 4, 6)],
            x => new NormalizeJacobianTangent(0, 1, 1e-3).Apply(x)),
        new(typeof(GroupMeanProduct), "per channel of [3,2,2,2]", r => [N(r, 3, 2, 2, 2), N(r, 3, 2, 2, 2)], x => new GroupMeanProduct(1, 2).Apply(x[0], x[1])),
        new(typeof(GroupMeanProduct), "per row of [4,5]", r => [N(r, 4, 5), N(r, 4, 5)], x => new GroupMeanProduct(0, 1).Apply(x[0], x[1])),
        new(typeof(ScaleShift), "per channel of [3,2,2,2], γ and β [2]", r => [N(r, 3, 2, 2, 2), N(r, 2), N(r, 2)], x => new ScaleShift(1, 2).Apply(x[0], x[1], x[2])),
        new(typeof(ScaleShift), "pair x·γ + x₂·γ₂ + β per channel of [3,2,2,2]", r => [N(r, 3, 2, 2, 2), N(r, 2), N(r, 2), N(r, 3, 2, 2, 2), N(r, 2)],
            x => new ScaleShift(1, 2).Apply(x)),
        new(typeof(ScaleShift), "per row of [4,3], γ and β [4,1]", r => [N(r, 4, 3), N(r, 4, 1), N(r, 4, 1)], x => new ScaleShift(0, 1).Apply(x[0], x[1], x[2])),
        new(typeof(ScaleShift), "relu(x·γ + β) per channel of [3,2,2,2]", r => [N(r, 3, 2, 2, 2), N(r, 2), N(r, 2)], x => new ScaleShift(1, 2, relu: true).Apply(x[0], x[1], x[2])),
        new(typeof(ScaleShift), "relu(x·γ + β + z), the residual z of [3,2,2,2]", r => [N(r, 3, 2, 2, 2), N(r, 2), N(r, 2), N(r, 3, 2, 2, 2)],
            x => new ScaleShift(1, 2, relu: true).Apply(x)),
        new(typeof(ScaleShift), "x·γ + β + z", r => [N(r, 3, 2, 2, 2), N(r, 2), N(r, 2), N(r, 3, 2, 2, 2)], x => new ScaleShift(1, 2).Apply(x)),
        new(typeof(ScaleShift), "pair x·γ + x₂·γ₂ + β + z", r => [N(r, 3, 2, 2, 2), N(r, 2), N(r, 2), N(r, 3, 2, 2, 2), N(r, 2), N(r, 3, 2, 2, 2)],
            x => new ScaleShift(1, 2).Apply(x)),
        new(typeof(GroupMean), "per channel of [3,2,2,2]", r => [N(r, 3, 2, 2, 2)], x => new GroupMean(1, 2).Apply(x[0])),
        new(typeof(GroupMean), "per row of [4,5]", r => [N(r, 4, 5)], x => new GroupMean(0, 1).Apply(x[0])),
        new(typeof(GroupCovariance), "per channel of [3,2,2,2], means far from zero", r => [N(r, 3, 2, 2, 2) + 3.0, N(r, 3, 2, 2, 2) - 2.0], x => new GroupCovariance(1, 2).Apply(x[0], x[1])),
        new(typeof(GroupCovariance), "per row of [4,5]", r => [N(r, 4, 5), N(r, 4, 5)], x => new GroupCovariance(0, 1).Apply(x[0], x[1])),
        new(typeof(NormalizeScaleShift), "x̂·γ + β per channel of [3,2,2,2]", r => [N(r, 3, 2, 2, 2), N(r, 2), N(r, 2)], x => new NormalizeScaleShift(1, 2, 1e-5).Apply(x)),
        new(typeof(NormalizeScaleShift), "relu(x̂·γ + β + z) per channel of [3,2,2,2]", r => [N(r, 3, 2, 2, 2) * 2.0 + 1.0, N(r, 2), N(r, 2), N(r, 3, 2, 2, 2)],
            x => new NormalizeScaleShift(1, 2, 1e-5, relu: true).Apply(x)),
        new(typeof(NormalizeScaleShift), "x̂·γ + β + z per row of [4,5], γ and β [4,1], ε 0.1", r => [N(r, 4, 5), N(r, 4, 1), N(r, 4, 1), N(r, 4, 5)],
            x => new NormalizeScaleShift(0, 1, 0.1).Apply(x)),
        new(typeof(NormalizeScaleShiftBackward), "per channel of [3,2,2,2], means far from zero", r => [N(r, 3, 2, 2, 2) * 2.0 + 1.0, N(r, 2), N(r, 3, 2, 2, 2) - 1.0],
            x => new NormalizeScaleShiftBackward(1, 2, 1e-5).Apply(x)),
        new(typeof(NormalizeScaleShiftBackward), "per row of [4,5], γ [4,1], ε 0.1", r => [N(r, 4, 5), N(r, 4, 1), N(r, 4, 5)],
            x => new NormalizeScaleShiftBackward(0, 1, 0.1).Apply(x)),
        new(typeof(NormalizeScaleShiftTangent), "per channel of [3,2,2,2], means far from zero", r => [N(r, 3, 2, 2, 2) * 2.0 + 1.0, N(r, 2), N(r, 2), N(r, 3, 2, 2, 2), N(r, 2), N(r, 2)],
            x => new NormalizeScaleShiftTangent(1, 2, 1e-5).Apply(x)),
        new(typeof(NormalizeScaleShiftTangent), "per row of [4,5], γ [4,1], ε 0.1", r => [N(r, 4, 5), N(r, 4, 1), N(r, 4, 1), N(r, 4, 5), N(r, 4, 1), N(r, 4, 1)],
            x => new NormalizeScaleShiftTangent(0, 1, 0.1).Apply(x)),
        new(typeof(NormalizeScaleShiftBackwardTangent), "along (ẋ, γ̇, u̇) alone, (x, γ, u) fixed", r => [N(r, 3, 2, 2, 2), N(r, 2), N(r, 3, 2, 2, 2)],
            x => new NormalizeScaleShiftBackwardTangent(1, 2, 1e-5).Apply(FixedX, FixedGamma, FixedU, x[0], x[1], x[2])),
        new(typeof(NormalizeScaleShiftJvp), "per channel of [3,2,2,2], means far from zero", r => [N(r, 3, 2, 2, 2) * 2.0 + 1.0, N(r, 2), N(r, 2), N(r, 3, 2, 2, 2), N(r, 2), N(r, 2)],
            x => new NormalizeScaleShiftJvp(1, 2, 1e-5).Apply(x)),
        new(typeof(NormalizeScaleShiftJvp), "clamped, with the residual's tangent, per row of [4,5]", r => [N(r, 4, 5), N(r, 4, 1), N(r, 4, 1), N(r, 4, 5), N(r, 4, 1), N(r, 4, 1), N(r, 4, 5)],
            x => new NormalizeScaleShiftJvp(0, 1, 0.1, relu: true) { Mask = FixedMask }.Apply(x)),
        new(typeof(NormalizeScaleShiftJvp), "clamped, along (ẋ, γ̇, β̇, ż) alone, (x, γ, β) fixed", r => [N(r, 3, 2, 2, 2), N(r, 2), N(r, 2), N(r, 3, 2, 2, 2)],
            x => new NormalizeScaleShiftJvp(1, 2, 1e-5, relu: true) { Mask = FixedU }.Apply(FixedX, FixedGamma, FixedBeta, x[0], x[1], x[2], x[3])),
        new(typeof(NormalizeScaleShiftBackwardTangent), "per channel of [3,2,2,2], means far from zero", r => [N(r, 3, 2, 2, 2) * 2.0 + 1.0, N(r, 2), N(r, 3, 2, 2, 2) - 1.0, N(r, 3, 2, 2, 2), N(r, 2), N(r, 3, 2, 2, 2)],
            x => new NormalizeScaleShiftBackwardTangent(1, 2, 1e-5).Apply(x)),
        new(typeof(NormalizeScaleShiftBackwardTangent), "per row of [4,5], γ [4,1], ε 0.1", r => [N(r, 4, 5), N(r, 4, 1), N(r, 4, 5), N(r, 4, 5), N(r, 4, 1), N(r, 4, 5)],
            x => new NormalizeScaleShiftBackwardTangent(0, 1, 0.1).Apply(x)),
        new(typeof(Row), "row 1 of [3,2,2]", r => [N(r, 3, 2, 2)], x => new Row(1).Apply(x[0])),
        new(typeof(Row), "row 0 of [2,3] and row 2 of [3]", r => [N(r, 2, 3), N(r, 3)], x => new Row(0).Apply(x[0]) * new Row(2).Apply(x[1])),
        new(typeof(GroupRstd), "per channel of [3,2,2,2]", r => [N(r, 3, 2, 2, 2)], x => new GroupRstd(1, 2, 1e-5).Apply(x[0])),
        new(typeof(GroupRstd), "per row of [4,5], ε 0.1", r => [N(r, 4, 5)], x => new GroupRstd(0, 1, 0.1).Apply(x[0])),
        new(typeof(Convolution2d), "conv 3×3 stride 1 pad 1 of [2,3,5,4]", r => [N(r, 2, 3, 5, 4), N(r, 4, 3, 3, 3)], x => x[0].Conv2d(x[1], 1, 1)),
        new(typeof(Convolution2d), "conv 3×3 stride 2 pad 1 of [2,2,7,6]", r => [N(r, 2, 2, 7, 6), N(r, 3, 2, 3, 3)], x => x[0].Conv2d(x[1], 2, 1)),
        new(typeof(Convolution2d), "input adjoint, 3×3 stride 2 pad 1", r => [N(r, 2, 3, 4, 3), N(r, 3, 2, 3, 3)],
            x => new Convolution2d(ConvolutionRole.InputAdjoint, new(2, 2, 7, 6, 3, 3, 3, 2, 1)).Apply(x[0], x[1])),
        new(typeof(Convolution2d), "conv pair f(x, w) + f(x₂, w₂), 3×3 stride 1 pad 1", r => [N(r, 2, 3, 5, 4), N(r, 4, 3, 3, 3), N(r, 2, 3, 5, 4), N(r, 4, 3, 3, 3)],
            x => new Convolution2d(ConvolutionRole.Forward, new(2, 3, 5, 4, 4, 3, 3, 1, 1)).Apply(x)),
        new(typeof(Convolution2d), "input adjoint pair, 3×3 stride 1 pad 1", r => [N(r, 2, 4, 5, 4), N(r, 4, 3, 3, 3), N(r, 2, 4, 5, 4), N(r, 4, 3, 3, 3)],
            x => new Convolution2d(ConvolutionRole.InputAdjoint, new(2, 3, 5, 4, 4, 3, 3, 1, 1)).Apply(x)),
        new(typeof(Convolution2d), "input adjoint pair, 3×3 stride 2 pad 1 (implicit GEMM)", r => [N(r, 2, 3, 4, 3), N(r, 3, 2, 3, 3), N(r, 2, 3, 4, 3), N(r, 3, 2, 3, 3)],
            x => new Convolution2d(ConvolutionRole.InputAdjoint, new(2, 2, 7, 6, 3, 3, 3, 2, 1)).Apply(x)),
        new(typeof(Convolution2d), "weight adjoint, 2×2 stride 1 pad 0", r => [N(r, 2, 2, 4, 5), N(r, 2, 3, 3, 4)],
            x => new Convolution2d(ConvolutionRole.WeightAdjoint, new(2, 2, 4, 5, 3, 2, 2, 1, 0)).Apply(x[0], x[1])),
        new(typeof(Softmax), "[3,5]", r => [N(r, 3, 5)], x => x[0].Softmax()),
        new(typeof(SoftmaxJacobian), "J(y)·g, [3,5]", r => [N(r, 3, 5), N(r, 3, 5)], x => SoftmaxJacobian.Instance.Apply(x[0], x[1])),
        new(typeof(Softmax), "[2,2,4], rows of 4", r => [N(r, 2, 2, 4) * 2.0], x => x[0].Softmax()),
        new(typeof(LogSoftmax), "[3,5]", r => [N(r, 3, 5)], x => x[0].LogSoftmax()),
        new(typeof(SoftmaxCrossEntropy), "[4,5] logits", r => [N(r, 4, 5)], x => Losses.CrossEntropy(x[0], Labels)),
        new(typeof(SoftmaxCrossEntropyBackward), "[4,5] logits", r => [N(r, 4, 5)], x => SoftmaxCrossEntropyBackward.Instance.Apply(x[0], Labels)),
    ];

    public static TheoryData<string> Cases()
    {
        var d = new TheoryData<string>();
        foreach (var s in Table) d.Add($"{s.Primitive.Name}: {s.Case}");
        return d;
    }

    /// <summary>k replicas that all hold the calling replica's array, each with share 1/k.</summary>
    private sealed class EqualReplicas(int k) : IReplicaGroup
    {
        public double Share => 1.0 / k;
        public NdArray Sum(NdArray x) => x * (double)k;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Second_order_forward_and_reverse_match_finite_differences(string name)
    {
        var spec = Table.Single(s => $"{s.Primitive.Name}: {s.Case}" == name);
        var property = Prop.ForAll(Gen.Choose(0, int.MaxValue).ToArbitrary(), seed =>
        {
            var rng = new RandomGenerator((ulong)seed);
            GradCheck.Check(spec.F, spec.Inputs(rng), order: 2, seed: (ulong)seed + 7, name: name);
        });
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(4), property);
    }

    /// <summary>The rows of the primitives that fold a sweep's partial sums into their own pass, and one that adds them afterwards.</summary>
    public static TheoryData<string> AccumulatingCases()
    {
        var d = new TheoryData<string>();
        foreach (var s in Table)
        {
            var method = s.Primitive.GetMethod("VjpAccumulating", System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.NonPublic);
            if (method?.DeclaringType == s.Primitive || s.Primitive == typeof(Multiply)) d.Add($"{s.Primitive.Name}: {s.Case}");
        }
        return d;
    }

    /// <summary>
    /// Every input also used by a later op (a second output c ⊙ x), so that the sweep reaches the row's rule with a
    /// partial sum for each input already in hand: the rules that fold it into their pass must give the same
    /// derivatives, to second order.
    /// </summary>
    [Theory]
    [MemberData(nameof(AccumulatingCases))]
    public void Cotangents_of_a_value_with_several_uses_match_finite_differences(string name)
    {
        var spec = Table.Single(s => $"{s.Primitive.Name}: {s.Case}" == name);
        var property = Prop.ForAll(Gen.Choose(0, int.MaxValue).ToArbitrary(), seed =>
        {
            var rng = new RandomGenerator((ulong)seed);
            var inputs = spec.Inputs(rng);
            var weights = inputs.Select(x => (Tensor)N(rng, [.. x.Shape.ToArray()])).ToArray();
            // The row's output first: the topological order visits it before the second uses, so the sweep meets them first.
            Tensor FanOut(Tensor[] x) => Tensor.Concat([spec.F(x).Reshape(-1), .. x.Select((t, i) => (t * weights[i]).Reshape(-1))], 0);
            GradCheck.Check(FanOut, inputs, order: 2, seed: (ulong)seed + 7, name: name + " (each input used twice)");
        });
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(3), property);
    }

    [Fact]
    public void A_sweep_hands_a_fused_rule_the_partial_sum_of_a_value_with_several_uses()
    {
        // The recorder's input x also feeds 3·x, whose cotangent the sweep computes first: the recorder's rule then
        // receives it as a partial sum. A sweep that dropped it would give x̄ = 1 alone, one that added it twice 7.
        var recorder = new PartialRecorder();
        var x = NdArray.FromArray(new double[] { 1, 2, 3, 4 }, new Shape(1, 2, 2));
        var (_, bars) = Derivatives.Vjp(t => Tensor.Concat([recorder.Apply(t[0]).Reshape(-1), (t[0] * 3.0).Reshape(-1)], 0), [x], NdArray.Ones(new Shape(8), DType.Float64));
        Assert.True(recorder.SawPartial, "the rule was not given the partial sum");
        Assert.Equal([4.0, 4.0, 4.0, 4.0], bars[0]!.Data.ToArray<double>()); // 1 (identity) + 3
    }

    /// <summary>The identity, whose accumulating rule records that a partial sum reached it.</summary>
    private sealed class PartialRecorder : Primitive
    {
        public bool SawPartial { get; private set; }
        public override string Name => "partial_recorder";
        protected override NdArray Forward(NdArray[] x) => x[0] * 1.0;
        protected override Tensor? Jvp(Tensor[] x, Tensor?[] xDot, Tensor y) => xDot[0];
        protected override Tensor?[] Vjp(Tensor[] x, Tensor y, Tensor yBar, bool[] needed) => [yBar];
        protected override Tensor?[] VjpAccumulating(Tensor[] x, Tensor y, Tensor yBar, bool[] needed, Tensor?[] partial)
        {
            SawPartial |= partial[0] is not null;
            return base.VjpAccumulating(x, y, yBar, needed, partial);
        }
    }

    [Fact]
    public void Every_primitive_is_in_the_table()
    {
        var all = typeof(Primitive).Assembly.GetTypes().Where(t => t.IsSubclassOf(typeof(Primitive)) && !t.IsAbstract).ToHashSet();
        var covered = Table.Select(s => s.Primitive).ToHashSet();
        var missing = all.Except(covered).Select(t => t.Name).Order().ToArray();
        Assert.True(missing.Length == 0, "primitives missing from the spec table: " + string.Join(", ", missing));
        Assert.True(all.Count >= 31, $"expected at least 31 primitives, found {all.Count}");
    }
}
