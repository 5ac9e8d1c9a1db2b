using Curvature.Autodiff;
using Curvature.Engine;
using Curvature.Models;
using Curvature.Models.Layers;
using Curvature.Spectral;
using Curvature.Training.Distributed;

namespace Curvature.Tests.Training;

/// <summary>Synchronized BatchNorm's composition against the fused primitive, on one replica (two are tested under mpirun).</summary>
[Collection(ThreadSettings.Name)]
public class SyncBatchNormTests
{
    [Fact]
    public void Over_one_replica_the_synchronized_statistics_give_the_fused_loss_gradient_hvp_and_running_statistics()
    {
        var rng = new RandomGenerator(5);
        var fused = new ResNet(rng, 1, width: 4, blocksPerStage: 1, dtype: DType.Float64);
        var synced = new ResNet(new RandomGenerator(5), 1, width: 4, blocksPerStage: 1, dtype: DType.Float64);
        var x = rng.Normal(new Shape(6, 1, 8, 8), dtype: DType.Float64);
        var y = rng.Integers(new Shape(6), 10);
        var v = rng.Normal(new Shape((int)fused.ParameterCount()), dtype: DType.Float64);
        HessianOperator H(Module m) => new(Loss.Function(m, "ce", x, y, training: true), m.Parameters().Select(p => p.Data).ToArray());
        var (l1, g1) = H(fused).LossAndGradient();
        var hv1 = H(fused).Apply(v).ToArray<double>();
        var group = new ReplicaGroup(SingleProcess.Instance, 1);
        double l2;
        NdArray g2;
        double[] hv2;
        using (BatchNorm2d.SynchronizeOver(group))
        {
            (l2, g2) = H(synced).LossAndGradient();
            hv2 = H(synced).Apply(v).ToArray<double>();
            // A training step's forward updates the running statistics from the same moments.
            synced.Forward(new Bindings(synced.Parameters(), synced.Parameters().Select(p => (Tensor)p.Data).ToArray(), training: true) { UpdateStatistics = true }, x);
        }
        fused.Forward(new Bindings(fused.Parameters(), fused.Parameters().Select(p => (Tensor)p.Data).ToArray(), training: true) { UpdateStatistics = true }, x);
        Assert.Equal(l1, l2, 12);
        var a = g1.ToArray<double>();
        var b = g2.ToArray<double>();
        for (int i = 0; i < a.Length; i++) Assert.Equal(a[i], b[i], 10);
        for (int i = 0; i < hv1.Length; i++) Assert.Equal(hv1[i], hv2[i], 9);
        var bf = fused.NamedBuffers().ToDictionary(t => t.Name, t => t.Buffer.Data.ToDoubleArray());
        foreach (var (name, buffer) in synced.NamedBuffers())
            Assert.Equal(bf[name], buffer.Data.ToDoubleArray(), (p, q) => Math.Abs(p - q) <= 1e-12 * (1 + Math.Abs(p)));
        // The gradient is not trivially zero.
        Assert.True(a.Max(Math.Abs) > 1e-3);
    }
}
