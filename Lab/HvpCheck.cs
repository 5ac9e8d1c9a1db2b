using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Curvature.Training;
using Curvature.Autodiff;
using Curvature.Engine;
using Curvature.Kernels;
using Curvature.Models;

namespace Curvature.Lab;

/// <summary>
/// <c>Lab hvp-check</c>: verifies the exact Hessian-vector product of a model of MODELS.md (the MLP, ResNet-20 or
/// the GPT) on a random batch against central finite differences (float64), checks its symmetry, and times
/// forward, gradient and HVP (float32). <c>--mode train</c> differentiates through BatchNorm's batch statistics.
/// </summary>
public static class HvpCheck
{
    /// <summary>The settings of one check.</summary>
    public sealed record Settings(string Model, int N, int Width, string Activation, string Loss, ulong Seed, int Repeats, int Directions, bool Training = false,
        Engine.Device? Device = null);

    /// <summary>What one check measured.</summary>
    public sealed record Report(
        long Parameters, double GradFdRelError, double HvpFdRelError, double SymmetryRelError,
        double ForwardMs, double GradMs, double HvpMs)
    {
        /// <summary>HVP time over gradient time.</summary>
        public double HvpOverGrad => HvpMs / GradMs;
    }

    internal static Command Command(TextWriter output)
    {
        var common = new Cli.CommonOptions();
        var model = new Option<string>("--model") { Description = "Model to check: mlp, resnet20 (28×28, 1 channel) or gpt (4 layers, 4 heads, T 128)", DefaultValueFactory = _ => "mlp" };
        model.AcceptOnlyFromAmong(ModelFiles.Names);
        var n = Options.OptionalInt("--n", "Number of random examples (sequences for gpt) in the batch (default: mlp 5000, resnet20 128, gpt 8)", max: 1_000_000);
        var width = Options.OptionalInt("--width", "Hidden width of the MLP (default 200) or of the GPT (default 128)", max: 1 << 16);
        var mode = Options.OneOf("--mode", "Loss in eval or train mode (BatchNorm on running or batch statistics)", "eval", "eval", "train");
        var activation = new Option<string>("--activation") { Description = "tanh or relu", DefaultValueFactory = _ => "tanh" };
        activation.AcceptOnlyFromAmong("tanh", "relu");
        var loss = new Option<string?>("--loss") { Description = "mse (Cohen et al.) or ce (default: mse for mlp, ce otherwise)" };
        loss.AcceptOnlyFromAmong("mse", "ce");
        var repeats = Options.Int("--repeats", "Timed runs per measurement (the median is reported)", 9, max: 1000);

        var cmd = new Command("hvp-check", "Check gradient and HVP against finite differences and time them");
        foreach (var o in new Option[] { model, n, width, activation, loss, repeats, mode }) cmd.Options.Add(o);
        common.AddTo(cmd);
        cmd.SetAction(r =>
        {
            var device = common.Apply(r, output);
            string m = r.GetValue(model)!;
            var s = new Settings(m, r.GetValue(n) ?? m switch { "mlp" => 5000, "resnet20" => 128, _ => 8 }, r.GetValue(width) ?? (m == "gpt" ? 128 : 200),
                r.GetValue(activation)!, r.GetValue(loss) ?? (m == "mlp" ? "mse" : "ce"), r.GetValue(common.Seed), r.GetValue(repeats), Directions: 4,
                Training: r.GetValue(mode) == "train", Device: device);
            var report = Run(s);
            Print(output, s, report);
            if (r.GetValue(common.Json) is { } path) AtomicFile.WriteAllText(path, ToJson(s, report));
            return 0;
        });
        return cmd;
    }

    /// <summary>Runs the checks and timings.</summary>
    public static Report Run(Settings s)
    {
        var (grad, hvp, sym, parameters) = Verify(s);
        var (fwd, g, h) = Time(s);
        return new Report(parameters, grad, hvp, sym, fwd, g, h);
    }

    private static (Module Model, Func<Tensor[], Tensor> Loss, Tensor[] W, RandomGenerator Rng) Problem(Settings s, DType dtype)
    {
        var rng = new RandomGenerator(s.Seed);
        (Module model, NdArray x, NdArray y) = s.Model switch
        {
            "mlp" => ((Module)Mlp.Create(rng, s.Width, s.Activation, dtype: dtype), rng.Normal(new Shape(s.N, 784), dtype: dtype), rng.Integers(new Shape(s.N), 10)),
            "resnet20" => (ResNet.ResNet20(rng, 1, dtype), rng.Normal(new Shape(s.N, 1, 28, 28), dtype: dtype), rng.Integers(new Shape(s.N), 10)),
            _ => (new Gpt(new GptConfig(Context: 128, Layers: 4, Heads: 4, Width: s.Width), rng, dtype), rng.Integers(new Shape(s.N, 128), 65), rng.Integers(new Shape(s.N, 128), 65)),
        };
        var device = s.Device ?? Engine.CpuDevice.Instance;
        model.To(device);
        var w = model.Parameters().Select(p => (Tensor)p.Data).ToArray();
        return (model, Loss.Function(model, s.Loss, x.To(device), y.To(device), s.Training), w, rng);
    }

    private static Tensor[] RandomUnit(RandomGenerator rng, Tensor[] like)
    {
        var v = like.Select(t => rng.Normal(t.Shape, dtype: t.DType, device: t.Device)).ToArray();
        double norm = Math.Sqrt(v.Sum(a => a.Dot(a)));
        return v.Select(a => (Tensor)(a / norm)).ToArray();
    }

    private static Tensor[] Axpy(Tensor[] w, double alpha, Tensor[] v) => w.Zip(v, (a, b) => (Tensor)(a.Data + b.Data * alpha)).ToArray();

    private static double Dot(Tensor[] a, Tensor[] b) => a.Zip(b, (x, y) => x.Data.Dot(y.Data)).Sum();

    /// <summary>Float64: gradient and HVP against central differences, and the symmetry of the HVP.</summary>
    private static (double Grad, double Hvp, double Symmetry, long Parameters) Verify(Settings s)
    {
        // Central differences step over ReLU kinks when a unit's pre-activation lies within the step of zero: with
        // 10⁵–10⁶ ReLU units (ResNet-20, the relu MLP) a step of 1e-5 crosses several and the difference of
        // gradients is dominated by their jumps. A step of 1e-7 crosses almost none and still leaves float64
        // round-off near 1e-9.
        double eps = s.Model == "resnet20" || s.Activation == "relu" && s.Model == "mlp" ? 1e-7 : 1e-5;
        var (model, f, w, rng) = Problem(s, DType.Float64);
        var (_, g) = Derivatives.ValueAndGrad(f, w);
        double gradErr = 0;
        for (int i = 0; i < s.Directions; i++)
        {
            var u = RandomUnit(rng, w);
            double exact = Dot(g, u);
            double fd = (f(Axpy(w, eps, u)).ToScalar() - f(Axpy(w, -eps, u)).ToScalar()) / (2 * eps);
            gradErr = Math.Max(gradErr, Math.Abs(exact - fd) / Math.Max(Math.Max(Math.Abs(exact), Math.Abs(fd)), double.Epsilon));
        }

        var v = RandomUnit(rng, w);
        var hv = Derivatives.Hvp(f, w, v).Product;
        var gPlus = Derivatives.Grad(f, Axpy(w, eps, v));
        var gMinus = Derivatives.Grad(f, Axpy(w, -eps, v));
        double num = 0, den = 0;
        for (int i = 0; i < w.Length; i++)
        {
            var fd = (gPlus[i].Data - gMinus[i].Data) / (2 * eps);
            var diff = hv[i].Data - fd;
            num += diff.Dot(diff);
            den += fd.Dot(fd);
        }

        var u2 = RandomUnit(rng, w);
        var hu = Derivatives.Hvp(f, w, u2).Product;
        double uHv = Dot(u2, hv), vHu = Dot(v, hu);
        double sym = Math.Abs(uHv - vHu) / Math.Max(Math.Max(Math.Abs(uHv), Math.Abs(vHu)), double.Epsilon);
        return (gradErr, Math.Sqrt(num / den), sym, model.ParameterCount());
    }

    /// <summary>Float32: median times of the loss, the gradient and the HVP.</summary>
    private static (double Forward, double Grad, double Hvp) Time(Settings s)
    {
        var (_, f, w, rng) = Problem(s, DType.Float32);
        var v = RandomUnit(rng, w);
        var ms = Timing.InterleavedMedianMs(
            [() => f(w).ToScalar(), () => Derivatives.ValueAndGrad(f, w), () => Derivatives.Hvp(f, w, v)], repeats: s.Repeats);
        return (ms[0], ms[1], ms[2]);
    }

    private static string F(double v) => v.ToString("0.00", CultureInfo.InvariantCulture);
    private static string E(double v) => v.ToString("0.0e+00", CultureInfo.InvariantCulture);

    private static void Print(TextWriter o, Settings s, Report r)
    {
        string what = s.Model switch
        {
            "mlp" => $"mlp ({s.Activation}, width {s.Width}",
            "resnet20" => "resnet20 (1×28×28 inputs",
            _ => $"gpt (4 layers, 4 heads, width {s.Width}, T 128",
        };
        o.WriteLine($"hvp-check: {what}, {r.Parameters:N0} parameters), loss {s.Loss}, {(s.Training ? "train" : "eval")} mode, N = {s.N}, seed {s.Seed}, {Parallelism.MaxThreads} threads");
        o.WriteLine();
        o.WriteLine("| check (float64) | relative error |");
        o.WriteLine("|---|---|");
        o.WriteLine($"| gradient · u vs central difference (max over {s.Directions} directions) | {E(r.GradFdRelError)} |");
        o.WriteLine($"| HVP vs central difference of gradients | {E(r.HvpFdRelError)} |");
        o.WriteLine($"| symmetry uᵀ(Hv) vs vᵀ(Hu) | {E(r.SymmetryRelError)} |");
        o.WriteLine();
        o.WriteLine($"| timing (float32, median of {s.Repeats} interleaved rounds) | ms |");
        o.WriteLine("|---|---|");
        o.WriteLine($"| forward (loss) | {F(r.ForwardMs)} |");
        o.WriteLine($"| gradient | {F(r.GradMs)} |");
        o.WriteLine($"| HVP (forward-over-reverse) | {F(r.HvpMs)} |");
        o.WriteLine($"| HVP / gradient | {F(r.HvpOverGrad)} |");
    }

    /// <summary>The JSON document written by <c>--json</c>.</summary>
    public static string ToJson(Settings s, Report r) => JsonSerializer.Serialize(new Dictionary<string, object>
    {
        ["model"] = s.Model,
        ["activation"] = s.Activation,
        ["width"] = s.Width,
        ["loss"] = s.Loss,
        ["mode"] = s.Training ? "train" : "eval",
        ["n"] = s.N,
        ["seed"] = s.Seed,
        ["threads"] = Parallelism.MaxThreads,
        ["parameters"] = r.Parameters,
        ["grad_fd_rel_error"] = r.GradFdRelError,
        ["hvp_fd_rel_error"] = r.HvpFdRelError,
        ["symmetry_rel_error"] = r.SymmetryRelError,
        ["forward_ms"] = r.ForwardMs,
        ["grad_ms"] = r.GradMs,
        ["hvp_ms"] = r.HvpMs,
        ["hvp_over_grad"] = r.HvpOverGrad,
    }, new JsonSerializerOptions { WriteIndented = true });
}
