using Curvature.Autodiff;
using Curvature.Engine;
using Curvature.Lab;

var rng = new RandomGenerator(1);
// perturbation confusion: d/dx [x * d/dy (x + y)] at x=1,y=1 -> 1
var one = NdArray.Scalar(1, DType.Float64);
var (_, d) = Derivatives.Jvp(x => x * Derivatives.Jvp(y => x + y, (Tensor)one, one).Tangent, (Tensor)one, one);
Console.WriteLine($"perturbation confusion: {d.ToScalar()} (expect 1)");
var mlp = new Mlp(20, 8, 3);
var p = mlp.Initialize(rng, DType.Float64).Select(a => (Tensor)a).ToArray();
var X = rng.Normal(new Shape(11, 20), dtype: DType.Float64);
var Y = rng.Integers(new Shape(11), 3);
foreach (var loss in new[] { "mse", "ce" })
{
    Func<Tensor[], Tensor> f = ps => mlp.Loss(ps, X, Y, loss);
    var v = p.Select(t => (Tensor)rng.Normal(t.Shape, dtype: DType.Float64)).ToArray();
    var r = Derivatives.Hvp(f, p, v);
    double eps = 1e-5;
    var gp = Derivatives.Grad(f, p.Zip(v, (a, b) => (Tensor)(a.Data + b.Data * eps)).ToArray());
    var gm = Derivatives.Grad(f, p.Zip(v, (a, b) => (Tensor)(a.Data - b.Data * eps)).ToArray());
    double num = 0, den = 0;
    for (int i = 0; i < p.Length; i++)
    {
        var fd = (gp[i].Data - gm[i].Data) / (2 * eps);
        var diff = fd - r.Product[i].Data;
        num += diff.Dot(diff); den += fd.Dot(fd);
    }
    Console.WriteLine($"{loss}: loss {r.Value.ToScalar():F6} hvp rel err {Math.Sqrt(num / den):E2}");
}
