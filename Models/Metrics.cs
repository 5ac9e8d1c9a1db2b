using Curvature.Engine;

namespace Curvature.Models;

/// <summary>Classification metrics computed on the host from logits [N, C] and int64 labels [N].</summary>
public static class Metrics
{
    /// <summary>The index of the largest logit of each row (first on ties).</summary>
    public static int[] Predictions(NdArray logits)
    {
        if (logits.Rank != 2) throw new ArgumentException($"predictions: logits have shape {logits.Shape}; expected [N, C].");
        int n = logits.Shape[0], c = logits.Shape[1];
        var v = logits.ToDoubleArray();
        var p = new int[n];
        for (int i = 0; i < n; i++)
        {
            int best = 0;
            for (int j = 1; j < c; j++) if (v[i * c + j] > v[i * c + best]) best = j;
            p[i] = best;
        }
        return p;
    }

    /// <summary>The fraction of rows (of positions, for logits [N, T, C]) whose largest logit is at the label.</summary>
    public static double Accuracy(NdArray logits, NdArray labels)
    {
        // Sequences [N, T, C] against [N, T]: every position is a row.
        if (logits.Rank == 3) (logits, labels) = (logits.Reshape(-1, logits.Shape[2]), labels.Reshape(-1));
        var p = Predictions(logits);
        var l = labels.ToArray<long>();
        if (l.Length != p.Length) throw new ArgumentException($"accuracy: {p.Length} rows of logits but {l.Length} labels.");
        return p.Length == 0 ? 0 : p.Where((x, i) => x == l[i]).Count() / (double)p.Length;
    }

    /// <summary>
    /// Expected calibration error (Guo et al. 2017) with <paramref name="bins"/> equal-width bins of the top
    /// softmax probability: Σ_b (|B_b|/N)·|accuracy(B_b) − confidence(B_b)|.
    /// </summary>
    public static double ExpectedCalibrationError(NdArray logits, NdArray labels, int bins = 15)
    {
        if (logits.Rank != 2) throw new ArgumentException($"ece: logits have shape {logits.Shape}; expected [N, C].");
        int n = logits.Shape[0], c = logits.Shape[1];
        var v = logits.ToDoubleArray();
        var l = labels.ToArray<long>();
        var count = new int[bins];
        var correct = new double[bins];
        var confidence = new double[bins];
        for (int i = 0; i < n; i++)
        {
            int best = 0;
            double max = double.NegativeInfinity;
            for (int j = 0; j < c; j++) if (v[i * c + j] > max) { max = v[i * c + j]; best = j; }
            double z = 0;
            for (int j = 0; j < c; j++) z += Math.Exp(v[i * c + j] - max);
            double p = 1 / z;
            int b = Math.Min(bins - 1, (int)(p * bins));
            count[b]++;
            confidence[b] += p;
            if (best == l[i]) correct[b]++;
        }
        double ece = 0;
        for (int b = 0; b < bins; b++)
            if (count[b] > 0) ece += (double)count[b] / n * Math.Abs(correct[b] / count[b] - confidence[b] / count[b]);
        return ece;
    }
}
