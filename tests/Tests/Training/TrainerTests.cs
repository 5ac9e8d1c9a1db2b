using Curvature.Autodiff;
using Curvature.Engine;
using Curvature.Models;
using Curvature.Optimizers;
using Curvature.Spectral;
using Curvature.Training;
using FsCheck;
using FsCheck.Fluent;

namespace Curvature.Tests.Training;

/// <summary>The one training loop: probes of the training objective, the audit column, run identity on resume, and validation splits.</summary>
[Collection(ThreadSettings.Name)]
public class TrainerTests
{
    /// <summary>An optimizer that steps like SGD and records H·v of the curvature its context offers at step 0.</summary>
    private sealed class Spy(NdArray v) : IOptimizer
    {
        public NdArray? Hv;
        public string Name => "spy";
        public StepLog Last { get; private set; } = new(0.01, 0, 0, null);
        public void Step(StepContext c)
        {
            if (c.Step == 0) Hv = c.Curvature!().Apply(v);
            for (int i = 0; i < c.Parameters.Count; i++) c.Parameters[i].Data = c.Parameters[i].Data - c.Gradients[i] * 0.01;
        }
        public IReadOnlyList<(string Name, NdArray Value)> State() => [];
        public void LoadState(IReadOnlyDictionary<string, NdArray> state) { }
    }

    private static (ResNet Model, NdArray X, NdArray Y) TinyResNet()
    {
        var rng = new RandomGenerator(11);
        return (ResNet.ResNet20(rng, 1), rng.Normal(new Shape(4, 1, 8, 8)), NdArray.FromArray(new long[] { 1, 3, 5, 7 }));
    }

    [Fact]
    public void Sharpness_measurements_hand_over_the_top_eigenvector_at_the_weights_of_their_step()
    {
        var rng = new RandomGenerator(2);
        var x = rng.Normal(new Shape(24, 784));
        var y = NdArray.FromArray(Enumerable.Range(0, 24).Select(i => (long)(i % 10)).ToArray());
        var model = Mlp.Create(new RandomGenerator(4), width: 8);
        var seen = new List<(int Step, double Value, NdArray Vector, NdArray[] Weights)>();
        var result = new Trainer
        {
            Model = model, Optimizer = new GradientDescent(0.1), Batches = new FullBatchStream(x, y), Steps = 8, Loss = "mse",
            Probe = new ProbeSettings(x, y, AuditEvery: 0), SharpnessEvery = 3, SharpnessIterations = 40, SharpnessTolerance = 1e-6,
            OnSharpness = (step, value, v) => seen.Add((step, value, v, ParameterVector.Of(model).Select(a => a.Copy()).ToArray())),
        }.Run();
        Assert.Equal(new[] { 0, 3, 6, 7 }, seen.Select(s => s.Step));          // every third step and the last
        var f = Loss.Function(model, "mse", x, y, training: true);
        foreach (var (step, value, v, weights) in seen)
        {
            Assert.Equal(result.Sharpness[step], value);
            Assert.Equal(1, Vectors.Norm(v), 1e-5);
            // The weights are those the step's loss was computed at, before its update; v is λmax's eigenvector there.
            Assert.Equal(result.Losses[step], f(weights.Select(w => (Tensor)w).ToArray()).ToScalar(), 1e-5);
            var hv = new HessianOperator(f, weights).Apply(v);
            Assert.True(Vectors.Norm(hv - v * value) <= 1e-2 * Math.Abs(value), $"step {step}: ‖Hv − λv‖ = {Vectors.Norm(hv - v * value)}, λ {value}");
        }
    }

    [Fact]
    public void Probes_take_the_training_mode_hessian_by_default_and_the_evaluation_mode_one_when_asked()
    {
        var (_, x, y) = TinyResNet();
        NdArray? v = null;
        float[] Expected(bool training)
        {
            // The probe comes after the step's training-mode forward, which has updated BatchNorm's running statistics.
            var (model, _, _) = TinyResNet();
            Trainer.Gradient(model, "ce", x, y, null);
            var values = model.Parameters().Select(p => p.Data).ToArray();
            v ??= new RandomGenerator(2).Normal(new Shape((int)values.Sum(a => (long)a.Size)));
            return new HessianOperator(Loss.Function(model, "ce", x, y, training), values).Apply(v).ToArray<float>();
        }
        var train = Expected(true);
        var eval = Expected(false);
        Assert.True(train.Zip(eval, (a, b) => Math.Abs(a - b)).Max() > 1e-2 * train.Max(Math.Abs), "BatchNorm makes the two modes different functions");
        foreach (var (mode, expected) in new[] { (true, train), (false, eval) })
        {
            var (m, _, _) = TinyResNet();
            var spy = new Spy(v!);
            new Trainer { Model = m, Optimizer = spy, Batches = new FullBatchStream(x, y), Steps = 1, Probe = new ProbeSettings(x, y, mode, AuditEvery: 0) }.Run();
            Assert.Equal(expected, spy.Hv!.ToArray<float>());
        }
    }

    [Fact]
    public void The_audit_column_holds_a_converged_lanczos_top_eigenvalue_of_the_probe_hessian()
    {
        var rng = new RandomGenerator(3);
        var model = Mlp.Create(rng, width: 8, inputs: 6, classes: 3);
        var x = rng.Normal(new Shape(12, 6));
        var y = NdArray.FromArray(Enumerable.Range(0, 12).Select(i => (long)(i % 3)).ToArray());
        var dir = Path.Combine(Scratch.NewDirectory(), "audit");
        var caeo = new Caeo(0.5, 0.5, probeEvery: 2);
        var initial = model.Parameters().Select(p => p.Data).ToArray();
        double lambda0 = Lanczos.Run(new HessianOperator(Loss.Function(model, "ce", x, y, training: true), initial), 60, tolerance: 1e-6).Values[0];
        var result = new Trainer { Model = model, Optimizer = caeo, Batches = new FullBatchStream(x, y), Steps = 9, Folder = dir, Probe = new ProbeSettings(x, y, true, AuditEvery: 2) }.Run();
        var rows = File.ReadAllLines(Path.Combine(dir, "steps.csv"));
        Assert.Equal("step,loss,lr,momentum,weight_decay,sharpness,lr_times_sharpness,sharpness_lanczos,seconds", rows[0]);
        // Probes at steps 0, 2, 4, 6, 8; the 1st, 3rd and 5th audited.
        Assert.Equal([0, 4, 8], Enumerable.Range(0, 9).Where(t => result.AuditSharpness[t] is not null));
        Assert.Equal([0, 2, 4, 6, 8], Enumerable.Range(0, 9).Where(t => result.Sharpness[t] is not null));
        Assert.Equal(lambda0, result.AuditSharpness[0]!.Value, 1e-3 * lambda0);
        Assert.Equal(result.Sharpness[0]!.Value, result.AuditSharpness[0]!.Value, 5e-2 * lambda0); // power iteration to a 1e-2 step at the first probe
        Assert.True(result.AuditSeconds > 0);
    }

    [Fact]
    public void A_resume_with_another_setting_or_a_foreign_log_is_refused_naming_it()
    {
        var rng = new RandomGenerator(4);
        var x = rng.Normal(new Shape(8, 5));
        var y = NdArray.FromArray(Enumerable.Range(0, 8).Select(i => (long)(i % 2)).ToArray());
        var dir = Path.Combine(Scratch.NewDirectory(), "identity");
        Trainer Make(string lr, int steps, bool resume) => new()
        {
            Model = Mlp.Create(new RandomGenerator(1), width: 4, inputs: 5, classes: 2), Optimizer = new GradientDescent(0.1), Batches = new FullBatchStream(x, y),
            Steps = steps, Folder = dir, Resume = resume, CheckpointEvery = 2, Identity = new Dictionary<string, string> { ["lr"] = lr },
        };
        var whole = Make("0.1", 6, false).Run().Losses;
        Make("0.1", 4, false).Run();
        var e = Assert.Throws<TrainingException>(() => Make("0.2", 6, true).Run());
        Assert.Contains("lr '0.1' (this run: '0.2')", e.Message);
        Assert.Equal(whole, Make("0.1", 6, true).Run().Losses);       // same settings: continues exactly
        var csv = Path.Combine(dir, "steps.csv");
        var lines = File.ReadAllLines(csv);
        File.WriteAllLines(csv, lines.Take(3));                        // a log shorter than the checkpoint
        e = Assert.Throws<TrainingException>(() => Make("0.1", 8, true).Run());
        Assert.Contains("holds 2 steps but the checkpoint is at step 6", e.Message);
        File.WriteAllLines(csv, [lines[0], .. lines.Skip(1).Select(l => "9" + l)]); // another run's steps
        e = Assert.Throws<TrainingException>(() => Make("0.1", 8, true).Run());
        Assert.Contains("does not belong to this checkpoint", e.Message);
    }

    /// <summary>Steps like SGD until its curvature comes back non-finite at a given step, as when weights have blown up.</summary>
    private sealed class BlowsUpAt(int step) : IOptimizer
    {
        public string Name => "blows-up";
        public StepLog Last { get; private set; } = new(0.1, 0, 0, null);
        public void Step(StepContext c)
        {
            if (c.Step == step) throw new ArithmeticException($"{Name}: the curvature estimate at step {c.Step} is NaN; stopping.");
            for (int i = 0; i < c.Parameters.Count; i++) c.Parameters[i].Data = c.Parameters[i].Data - c.Gradients[i] * 0.1;
        }
        public IReadOnlyList<(string Name, NdArray Value)> State() => [];
        public void LoadState(IReadOnlyDictionary<string, NdArray> state) { }
    }

    [Fact]
    public void A_run_whose_curvature_turns_non_finite_is_recorded_as_diverged_or_fails_with_one_message()
    {
        var rng = new RandomGenerator(6);
        var x = rng.Normal(new Shape(8, 5));
        var y = NdArray.FromArray(Enumerable.Range(0, 8).Select(i => (long)(i % 2)).ToArray());
        Trainer Make(bool stop) => new()
        {
            Model = Mlp.Create(new RandomGenerator(1), width: 4, inputs: 5, classes: 2), Optimizer = new BlowsUpAt(3), Batches = new FullBatchStream(x, y),
            Steps = 6, StopWhenDiverged = stop,
        };
        var result = Make(true).Run();
        Assert.Equal(3, result.DivergedAt);
        Assert.Equal(4, result.StepsRun);
        Assert.All(result.Losses[3..], l => Assert.True(double.IsNaN(l)));
        Assert.All(result.Losses[..3], l => Assert.True(double.IsFinite(l)));
        var e = Assert.Throws<TrainingException>(() => Make(false).Run());
        Assert.Equal("blows-up: the curvature estimate at step 3 is NaN; stopping.", e.Message);
    }

    [Fact]
    public void Validation_images_are_the_last_ones_and_never_overlap_the_training_images()
    {
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(300), Prop.ForAll(Gen.Choose(2, 70000).ToArbitrary(), Gen.Choose(0, 1000).ToArbitrary(), Gen.Choose(0, 1000).ToArbitrary(), (total, vu, lu) =>
        {
            int validation = (int)((long)(total - 1) * vu / 1000);
            int? limit = lu == 0 ? null : Math.Max(1, (int)((long)(total - validation) * lu / 1000));
            var (trainCount, valStart, valCount) = TrainingTask.ImageSplit(total, limit, validation);
            Assert.Equal(validation, valCount);
            Assert.Equal(total, valStart + valCount);
            Assert.True(trainCount <= valStart, "training images [0, n) end before the validation images start");
            Assert.Equal(limit ?? total - validation, trainCount);
        }));
        Assert.Contains("--train 60: expected 1 to 50", Assert.Throws<TrainingException>(() => TrainingTask.ImageSplit(64, 60, 14)).Message);
        Assert.Contains("--val 64", Assert.Throws<TrainingException>(() => TrainingTask.ImageSplit(64, null, 64)).Message);
    }
}
