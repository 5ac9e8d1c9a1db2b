using Curvature.Engine;
using Curvature.Models;
using Curvature.Spectral;
using Curvature.Training;
using Curvature.Training.Distributed;
using FsCheck;
using FsCheck.Fluent;

namespace Curvature.Tests.Training;

/// <summary>The data-parallel rules that need no second process: shards, share-weighted sums, the distributed operator on one rank.</summary>
[Collection(ThreadSettings.Name)]
public class DataParallelTests
{
    [Fact]
    public void Shards_cover_the_batch_in_rank_order_and_differ_in_size_by_at_most_one()
    {
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(300), Prop.ForAll(Gen.Choose(1, 64).ToArbitrary(), Gen.Choose(0, 5000).ToArbitrary(), (size, extra) =>
        {
            int count = size + extra;
            var shards = Enumerable.Range(0, size).Select(r => DataParallel.Shard(count, r, size)).ToArray();
            Assert.Equal(0, shards[0].Start);
            for (int r = 1; r < size; r++) Assert.Equal(shards[r - 1].Start + shards[r - 1].Count, shards[r].Start);
            Assert.Equal(count, shards[^1].Start + shards[^1].Count);
            Assert.True(shards.Max(s => s.Count) - shards.Min(s => s.Count) <= 1);
            // The shares n_r/N sum to one, so share-weighted sums of shard means are the global mean.
            Assert.Equal(1.0, shards.Sum(s => s.Count / (double)count), 12);
        }));
    }

    [Fact]
    public void A_batch_smaller_than_the_ranks_is_refused_naming_both()
    {
        var e = Assert.Throws<TrainingException>(() => DataParallel.Shard(3, 0, 4));
        Assert.Contains("3 examples", e.Message);
        Assert.Contains("4 ranks", e.Message);
    }

    [Fact]
    public void Share_weighted_sums_of_shard_means_equal_the_whole_batch_mean()
    {
        // The rule every distributed gradient and HVP rests on, checked by summing the shards' parts here.
        var rng = new RandomGenerator(3);
        var model = Mlp.Create(rng, width: 5, inputs: 6, classes: 3, dtype: DType.Float64);
        var x = rng.Normal(new Shape(23, 6), dtype: DType.Float64);
        var y = rng.Integers(new Shape(23), 3);
        var values = model.Parameters().Select(p => p.Data).ToArray();
        var v = rng.Normal(new Shape((int)values.Sum(a => a.Size)), dtype: DType.Float64);
        var whole = new HessianOperator(Loss.Function(model, "ce", x, y), values);
        foreach (int size in new[] { 2, 3, 5 })
        {
            NdArray? hv = null;
            double loss = 0;
            for (int r = 0; r < size; r++)
            {
                var (start, count) = DataParallel.Shard(23, r, size);
                var part = new HessianOperator(Loss.Function(model, "ce", x.Slice(0, start, count), y.Slice(0, start, count)), values);
                double share = count / 23.0;
                var term = DataParallel.WeightedSum(SingleProcess.Instance, [part.Apply(v)], share)[0];
                hv = hv is null ? term : hv + term;
                loss += DataParallel.WeightedSum(SingleProcess.Instance, part.LossAndGradient().Loss, share);
            }
            var expected = whole.Apply(v).ToArray<double>();
            var got = hv!.ToArray<double>();
            for (int i = 0; i < got.Length; i++) Assert.Equal(expected[i], got[i], 1e-12);
            Assert.Equal(whole.LossAndGradient().Loss, loss, 12);
        }
    }

    [Fact]
    public void On_one_process_the_distributed_operator_and_the_collectives_are_the_local_ones()
    {
        var a = new DenseOperator(NdArray.FromArray(new double[] { 2, 1, 1, 3 }, new Shape(2, 2)));
        var d = new DistributedOperator(a, 1, SingleProcess.Instance);
        var v = NdArray.FromArray(new double[] { 1, -2 });
        Assert.Equal(a.Apply(v).ToArray<double>(), d.Apply(v).ToArray<double>());
        Assert.Equal([7L], SingleProcess.Instance.AllGather(7));
        Assert.True(DataParallel.Any(SingleProcess.Instance, true));
        Assert.False(DataParallel.Any(SingleProcess.Instance, false));
        Assert.Equal("text", DataParallel.Broadcast(SingleProcess.Instance, "text"));
        DataParallel.RequireAgreement(SingleProcess.Instance, new Dictionary<string, string> { ["a"] = "1" });
    }

    [Fact]
    public void The_fingerprint_changes_with_any_weight()
    {
        var model = Mlp.Create(new RandomGenerator(1), width: 4, inputs: 3, classes: 2);
        long before = DataParallel.Fingerprint(model);
        Assert.Equal(before, DataParallel.Fingerprint(model));
        var p = model.Parameters()[^1];
        var w = p.Data.ToArray<float>();
        w[0] = BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(w[0]) + 1);   // one ulp
        p.Data = NdArray.FromArray(w, p.Data.Shape);
        Assert.NotEqual(before, DataParallel.Fingerprint(model));
    }
}
