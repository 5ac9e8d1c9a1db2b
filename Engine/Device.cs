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

    /// <summary>
    /// (x − μ)/√(σ² + ε) per group, x viewed as [a, g, b] with each of the g groups reduced over a and b
    /// (BatchNorm: [N, C, H·W]; LayerNorm: [1, rows, features]).
    /// </summary>
    public abstract NdArray Normalize(NdArray x, int a, int g, int b, double epsilon);

    /// <summary>
    /// <see cref="Normalize"/> and the per-group mean and biased variance it used (float64 arrays of g values), for
    /// BatchNorm's running statistics. The default runs <see cref="GroupMoments"/> besides; devices whose
    /// normalization computes the moments anyway return those.
    /// </summary>
    public virtual (NdArray Normalized, NdArray Mean, NdArray Variance) NormalizeWithMoments(NdArray x, int a, int g, int b, double epsilon)
    {
        var (mean, variance) = GroupMoments(x, a, g, b);
        return (Normalize(x, a, g, b, epsilon), mean, variance);
    }

    /// <summary>
    /// x·scale + shift with one scale and shift per group (x viewed as [a, g, b]; scale and shift of g values), plus
    /// <paramref name="addend"/> (x's shape) when given, then max(·, 0) when <paramref name="relu"/> is set.
    /// </summary>
    public abstract NdArray ScaleShift(NdArray x, NdArray scale, NdArray shift, int a, int g, int b, NdArray? addend = null, bool relu = false);

    /// <summary>x·scale + x2·scale2 + shift with one scale, scale2 and shift per group (x and x2 viewed as [a, g, b]), plus <paramref name="addend"/> when given.</summary>
    public abstract NdArray ScaleShift(NdArray x, NdArray scale, NdArray shift, NdArray x2, NdArray scale2, int a, int g, int b, NdArray? addend = null);

    /// <summary>
    /// The per-group coefficients of x̂·γ + β = x·s + t, x̂ = (x − μ)·r and r = 1/√(σ² + ε), from the moments of x
    /// (float64, g values each) and γ, β (g values of the result's dtype): [2, g] with row 0 s = γ·r and row 1
    /// t = β − μ·s, each computed in float64 and rounded once (<see cref="Kernels.NormalizationCoefficients"/>).
    /// </summary>
    public abstract NdArray NormalizeScaleShiftCoefficients(NdArray gamma, NdArray beta, NdArray mean, NdArray variance, double epsilon);

    /// <summary>
    /// What the backward of x̂·γ + β needs per group, from x viewed as [a, g, b], the output's cotangent u (x's
    /// shape), γ (g values) and the moments of x (float64, g values each), in one read pass over x and u: [5, g] in
    /// x's dtype with rows Σu, Σu·x̂, and the coefficients a, k, c of x̄ = u·a + x·k + c
    /// (<see cref="Kernels.NormalizationCoefficients.Backward"/>), computed in float64 and rounded once.
    /// </summary>
    public abstract NdArray NormalizeScaleShiftBackward(NdArray x, NdArray u, NdArray gamma, NdArray mean, NdArray variance, int a, int g, int b, double epsilon);

    /// <summary>
    /// BatchNorm's running statistics after one training batch, in one kernel: mean' = (1 − m)·mean + m·μ and
    /// var' = (1 − m)·var + m·σ²·<paramref name="bessel"/>, from the batch's float64 mean μ and biased variance σ², each
    /// batch statistic rounded to the running dtype first and the products and the sum rounded apart (as
    /// <see cref="LinearCombination"/> rounds), and the int64 batch counter plus one. All three are fresh arrays.
    /// </summary>
    public abstract (NdArray Mean, NdArray Variance, NdArray Batches) UpdateRunningStatistics(NdArray runningMean, NdArray runningVariance,
        NdArray batches, NdArray mean, NdArray variance, double momentum, double bessel);


    /// <summary>
    /// <see cref="NormalizeScaleShiftCoefficients"/> and their tangents along (ẋ, γ̇, β̇), x viewed as [a, g, b]:
    /// [4, g] in x's dtype with rows s, t, ṡ, ṫ (<see cref="Kernels.NormalizationCoefficients.Tangent"/>), from one
    /// read pass over x and ẋ. A null tangent is zero.
    /// </summary>
    public abstract NdArray NormalizeScaleShiftTangent(NdArray x, NdArray? xDot, NdArray gamma, NdArray beta, NdArray? gammaDot, NdArray? betaDot,
        NdArray mean, NdArray variance, int a, int g, int b, double epsilon);

    /// <summary>
    /// The tangents of <see cref="NormalizeScaleShiftBackward"/>'s five rows along (ẋ, γ̇, u̇): [5, g] in x's dtype
    /// (<see cref="Kernels.NormalizationCoefficients.BackwardTangent"/>). A null tangent is zero.
    /// </summary>
    public abstract NdArray NormalizeScaleShiftBackwardTangent(NdArray x, NdArray u, NdArray gamma, NdArray? xDot, NdArray? gammaDot, NdArray? uDot,
        NdArray mean, NdArray variance, int a, int g, int b, double epsilon);

    /// <summary>Per-group mean of x·y, both viewed as [a, g, b]: a float64 array of g values on this device.</summary>
    public abstract NdArray GroupMeanProduct(NdArray x, NdArray y, int a, int g, int b);

    /// <summary>
    /// Per-group covariance mean((x − mean x)·(y − mean y)), both viewed as [a, g, b]: a float64 array of g values on
    /// this device, computed without the cancellation of mean(x·y) − mean x·mean y.
    /// </summary>
    public abstract NdArray GroupCovariance(NdArray x, NdArray y, int a, int g, int b);

    /// <summary>Per-group mean and biased variance of x viewed as [a, g, b]: float64 arrays of g values on this device.</summary>
    public abstract (NdArray Mean, NdArray Variance) GroupMoments(NdArray x, int a, int g, int b);

    /// <summary>The normalization's Jacobian (symmetric) applied to u: r·(u − mean u − x̂·mean(u·x̂)) per group.</summary>
    public abstract NdArray NormalizeJacobian(NdArray x, NdArray u, int a, int g, int b, double epsilon);

    /// <summary>
    /// The tangent of J(x)·u along (v, w): ∂ₓ(J u)[v] + J·w, given ju = J(x)·u; <paramref name="w"/> null means zero
    /// (all arrays viewed as [a, g, b]).
    /// </summary>
    public abstract NdArray NormalizeJacobianTangent(NdArray x, NdArray u, NdArray ju, NdArray v, NdArray? w, int a, int g, int b, double epsilon);

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
