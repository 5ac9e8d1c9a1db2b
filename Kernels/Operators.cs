namespace Curvature.Kernels;

// The element-wise vocabulary both kernel families (Cpu/, Gpu/) and the layers above share: named for what each
// computes, not for the derivative rule that happens to call it (kernels know no autodiff).

/// <summary>Element-wise functions of one argument.</summary>
public enum UnaryOp
{
    /// <summary>−x</summary>
    Neg,
    /// <summary>eˣ</summary>
    Exp,
    /// <summary>ln x</summary>
    Log,
    /// <summary>tanh x</summary>
    Tanh,
    /// <summary>√x</summary>
    Sqrt,
    /// <summary>max(x, 0)</summary>
    Relu,
    /// <summary>|x|</summary>
    Abs,
    /// <summary>x²</summary>
    Square,
    /// <summary>1/x</summary>
    Reciprocal,
    /// <summary>erf x</summary>
    Erf,
    /// <summary>The exact GELU, x·Φ(x) = ½x(1 + erf(x/√2))</summary>
    Gelu,
    /// <summary>GELU's derivative, Φ(x) + x·φ(x)</summary>
    GeluDerivative,
    /// <summary>GELU's second derivative, φ(x)·(2 − x²)</summary>
    GeluSecondDerivative,
}

/// <summary>Element-wise functions of two arguments; comparisons give 1 for true and 0 for false.</summary>
public enum BinaryOp
{
    /// <summary>x + y</summary>
    Add,
    /// <summary>x − y</summary>
    Sub,
    /// <summary>x · y</summary>
    Mul,
    /// <summary>x / y</summary>
    Div,
    /// <summary>max(x, y)</summary>
    Max,
    /// <summary>min(x, y)</summary>
    Min,
    /// <summary>xʸ</summary>
    Pow,
    /// <summary>x &gt; y</summary>
    Greater,
    /// <summary>x ≥ y</summary>
    GreaterEqual,
    /// <summary>x &lt; y</summary>
    Less,
    /// <summary>x ≤ y</summary>
    LessEqual,
    /// <summary>x = y</summary>
    Equal,
    /// <summary>y · (1 − x²) (with x = tanh u it is y·tanh′(u): the tanh primitive's derivative rules call it)</summary>
    MulOneMinusSquare,
    /// <summary>y where x &gt; 0, else 0 (with x a ReLU's input it is y·relu′(x))</summary>
    MaskPositive,
}

/// <summary>Reductions over axes.</summary>
public enum ReduceOp
{
    /// <summary>Σ x</summary>
    Sum,
    /// <summary>max x</summary>
    Max,
}
