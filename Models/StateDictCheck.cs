using Curvature.Engine;

namespace Curvature.Models;

/// <summary>
/// Checks of tensors read from files, which are untrusted: a weight, batch or optimizer tensor holding NaN or ±∞
/// is refused by name before it reaches a model (a NaN weight would otherwise train, sample or report nonsense).
/// </summary>
public static class StateDictCheck
{
    /// <summary>The first non-finite element of a floating-point tensor (index in row-major order, value), or null.</summary>
    public static (long Index, double Value)? FirstNonFinite(NdArray tensor)
    {
        switch (tensor.DType)
        {
            case DType.Float32:
            {
                var v = tensor.ToArray<float>();
                for (int i = 0; i < v.Length; i++) if (!float.IsFinite(v[i])) return (i, v[i]);
                return null;
            }
            case DType.Float64:
            {
                var v = tensor.ToArray<double>();
                for (int i = 0; i < v.Length; i++) if (!double.IsFinite(v[i])) return (i, v[i]);
                return null;
            }
            default:
                return null;
        }
    }

    /// <summary>Throws naming <paramref name="path"/> and every tensor (up to ten) that holds a non-finite value.</summary>
    public static void RequireFinite(IEnumerable<KeyValuePair<string, NdArray>> tensors, string path)
    {
        var bad = tensors.Select(kv => (kv.Key, At: FirstNonFinite(kv.Value))).Where(t => t.At is not null).ToList();
        if (bad.Count == 0) return;
        throw new StateDictException($"{path}: {bad.Count} tensor{(bad.Count > 1 ? "s hold" : " holds")} non-finite values: " +
            string.Join(", ", bad.Take(10).Select(t => $"'{t.Key}' ({t.At!.Value.Value.ToString(System.Globalization.CultureInfo.InvariantCulture)} at element {t.At.Value.Index})")) +
            (bad.Count > 10 ? $" and {bad.Count - 10} more" : "") + "; expected finite numbers.");
    }
}
