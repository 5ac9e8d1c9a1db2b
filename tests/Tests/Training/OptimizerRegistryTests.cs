using System.Globalization;
using Curvature.Optimizers;
using Curvature.Training;
using FsCheck;
using FsCheck.Fluent;

namespace Curvature.Tests.Training;

/// <summary>The one optimizer registry and its spec syntax: name[:key=value]…, typed, range-checked, every error naming what is valid.</summary>
public class OptimizerRegistryTests
{
    private static readonly string[] Names = ["1.weight", "1.bias", "3.weight"];

    [Fact]
    public void A_spec_sets_the_hyperparameters_it_names_and_leaves_the_rest_at_their_defaults()
    {
        var m = (Momentum)OptimizerSpec.Parse("momentum:lr=0.2:mu=0.5").Create(Names, 0);
        Assert.Equal(0.2, m.LearningRate);
        Assert.Equal(0.5, m.Beta);
        Assert.Equal(0, m.WeightDecay);
        var caeo = (Caeo)OptimizerSpec.Parse("caeo:delta=0.1:estimator=kfac").Create(Names, 0);
        Assert.Equal((0.5, 0.1, CurvatureEstimator.Kfac, 10), (caeo.BaseLearningRate, caeo.Delta, caeo.Estimator, caeo.ProbeEvery));
        // A verb's defaults fill keys the spec does not set; the spec's own value wins.
        var defaults = new Dictionary<string, double> { ["probe_every"] = 3, ["delta"] = 1.0 };
        var c2 = (Caeo)OptimizerSpec.Parse("caeo:delta=0.2").Create(Names, 0, defaults);
        Assert.Equal((0.2, 3), (c2.Delta, c2.ProbeEvery));
        var dcao = (Dcao)OptimizerSpec.Parse("dcao:mode=relative:gap=accelerates").Create(Names, 0);
        Assert.True(dcao.Relative && dcao.GapAccelerates);
        Assert.False(((Dcao)OptimizerSpec.Parse("dcao").Create(Names, 0)).Relative); // the seed's absolute rule by default
    }

    [Fact]
    public void The_canonical_text_orders_keys_as_the_table_does()
    {
        Assert.Equal("caeo:lr=0.3:delta=0.1", OptimizerSpec.Parse(" caeo : delta=0.1 : lr=0.3 ").Text);
        Assert.Equal("adamw:lr=0.001:wd=0.1", OptimizerSpec.Parse("adamw:wd=0.1").With("lr", 1e-3).Text);
        Assert.Equal(["sgd:lr=0.1", "momentum:lr=0.05:mu=0.9", "caeo:lr=0.5:delta=0.5"],
            OptimizerSpec.ParseList("sgd:lr=0.1,momentum:lr=0.05:mu=0.9,caeo:lr=0.5:delta=0.5").Select(s => s.Text));
    }

    [Theory]
    [InlineData("adamm", "unknown optimizer 'adamm'; valid: sgd, momentum")]
    [InlineData("sgd:mu=0.9", "sgd: unknown key 'mu'; valid: lr, wd")]
    [InlineData("sgd:lr", "'lr' is not key=value")]
    [InlineData("sgd:lr=abc", "sgd: lr=abc is not a number; expected a number in (0, ∞)")]
    [InlineData("sgd:lr=1,5", "unknown optimizer '5'")]
    [InlineData("momentum:mu=1", "momentum: mu=1 is out of range; expected a number in [0, 1)")]
    [InlineData("caeo:estimator=gauss", "caeo: estimator=gauss is not one of power|hutchinson|kfac")]
    [InlineData("caeo:probe_every=2.5", "an integer ≥ 1")]
    [InlineData("sgd:lr=0.1:lr=0.2", "lr is given twice")]
    [InlineData("sgd,sgd", "'sgd' is given twice")]
    [InlineData("", "no optimizer given")]
    public void A_bad_spec_is_one_error_naming_it_and_what_is_valid(string text, string message)
    {
        var e = Assert.Throws<OptimizerSpecException>(() => OptimizerSpec.ParseList(text));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void Every_entry_builds_with_its_defaults_and_takes_every_in_range_value_and_refuses_out_of_range_ones()
    {
        foreach (var entry in OptimizerRegistry.Entries)
        {
            var opt = OptimizerSpec.Parse(entry.Name).Create(Names, 7);
            Assert.False(string.IsNullOrEmpty(opt.Name));
            Assert.NotEmpty(entry.Summary);
            foreach (var p in entry.Parameters)
            {
                Assert.NotEmpty(p.Description);
                Assert.Equal(p.Default, p.Parse(entry.Name, p.DefaultText), 1e-12 * Math.Max(1, Math.Abs(p.Default)));
            }
        }
        var numeric = OptimizerRegistry.Entries.SelectMany(e => e.Parameters.Where(p => p.Choices is null).Select(p => (e, p))).ToArray();
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(300), Prop.ForAll(Gen.Choose(0, numeric.Length - 1).ToArbitrary(), Gen.Choose(1, 999).ToArbitrary(), (i, u) =>
        {
            var (e, p) = numeric[i];
            double hi = double.IsPositiveInfinity(p.Max) ? Math.Max(10, 10 * p.Default) : p.Max;
            double v = p.Min + (hi - p.Min) * u / 1000.0;
            if (p.Integer) v = Math.Max(p.Min, Math.Floor(v));
            string text = v.ToString("R", CultureInfo.InvariantCulture);
            var spec = OptimizerSpec.Parse($"{e.Name}:{p.Key}={text}");
            Assert.Equal(v, spec.Given[p.Key]);
            Assert.Throws<OptimizerSpecException>(() => OptimizerSpec.Parse($"{e.Name}:{p.Key}={(p.Min - 1).ToString("R", CultureInfo.InvariantCulture)}"));
        }));
    }

    [Fact]
    public void Help_lists_every_optimizer_with_its_keys_and_defaults()
    {
        var help = OptimizerRegistry.Help();
        foreach (var e in OptimizerRegistry.Entries)
        {
            Assert.Contains(e.Name + " (", help);
            foreach (var p in e.Parameters) Assert.Contains($"{p.Key}={p.DefaultText}", help);
        }
    }
}
