using Curvature.Autodiff;
using Curvature.Engine;

namespace Curvature.Tests.Autodiff;

/// <summary>The per-primitive profile: counts calls and FLOPs of what runs inside its scope only.</summary>
public class OpProfileTests
{
    [Fact]
    public void Records_calls_and_flops_per_primitive_inside_its_scope_only()
    {
        var rng = new RandomGenerator(1);
        Tensor a = rng.Normal(new Shape(4, 5)), b = rng.Normal(new Shape(5, 3));
        var profile = new OpProfile();
        using (OpProfile.Record(profile))
        {
            _ = a.MatMul(b);
            _ = a.MatMul(b).Tanh();
        }
        _ = a.MatMul(b); // outside: not counted
        var byName = profile.ByTime().ToDictionary(e => e.Name, e => e.Totals);
        Assert.Equal(2, byName["matmul"].Calls);
        Assert.Equal(2 * 2 * 4 * 3 * 5, byName["matmul"].Flops);
        Assert.Equal(1, byName["tanh"].Calls);
        Assert.All(byName.Values, e => Assert.True(e.Milliseconds >= 0));
    }
}
