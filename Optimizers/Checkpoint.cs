using System.Globalization;
using Curvature.Engine;
using Curvature.Models;

namespace Curvature.Optimizers;

/// <summary>
/// A training checkpoint: one safetensors file with the model's state dict (<c>model.*</c>), the optimizer's
/// state (<c>optimizer.*</c>) and string metadata holding the format version, the step and whatever else the
/// run needs to continue exactly (random-stream offsets, the data cursor, the options). Written atomically
/// (temporary file, flush, rename), so a crash leaves the previous checkpoint intact.
/// </summary>
public static class Checkpoint
{
    /// <summary>The format tag and version in every checkpoint.</summary>
    public const string Format = "curvature-checkpoint", Version = "1";

    /// <summary>Writes a checkpoint of <paramref name="model"/> and <paramref name="optimizer"/> at <paramref name="step"/>, atomically.</summary>
    public static void Save(string path, Module model, IOptimizer optimizer, int step, IReadOnlyDictionary<string, string> metadata) =>
        AtomicFile.WriteAllBytes(path, Serialize(model, optimizer, step, metadata));

    /// <summary>
    /// The bytes of a checkpoint (what <see cref="Save"/> writes), for a caller that writes them later: a trainer
    /// keeps the newest checkpoint in memory until the next step's loss shows its weights are sound.
    /// </summary>
    public static byte[] Serialize(Module model, IOptimizer optimizer, int step, IReadOnlyDictionary<string, string> metadata)
    {
        var optimizerState = optimizer.State();
        var tensors = model.StateDict().Select(t => ("model." + t.Name, t.Value))
            .Concat(optimizerState.Select(t => ("optimizer." + t.Name, t.Value))).ToList();
        var meta = new Dictionary<string, string>(metadata)
        {
            ["format"] = Format,
            ["version"] = Version,
            ["optimizer"] = optimizer.Name,
            ["step"] = step.ToString(CultureInfo.InvariantCulture),
            // The optimizer's tensors by name: a checkpoint that lost one (or gained one) is refused, never restarted from zero.
            [OptimizerTensors] = string.Join(',', optimizerState.Select(t => t.Name)),
        };
        return Safetensors.Serialize(tensors, meta);
    }

    /// <summary>The metadata key listing the optimizer's tensors.</summary>
    public const string OptimizerTensors = "optimizer_tensors";

    /// <summary>
    /// Restores the model and optimizer from a checkpoint and returns its metadata; the step is under "step".
    /// The whole file is validated before anything changes: the format, version and optimizer; every tensor
    /// is the model's or one the optimizer listed when it saved (none missing, none unknown) and holds finite
    /// values; then <paramref name="check"/> sees the metadata (a run's identity and cursor) and throws to refuse
    /// it. Errors name the file and what is wrong.
    /// </summary>
    public static IReadOnlyDictionary<string, string> Load(string path, Module model, IOptimizer optimizer, Action<IReadOnlyDictionary<string, string>>? check = null)
    {
        var file = Safetensors.Read(path);
        var meta = file.Metadata;
        if (!meta.TryGetValue("format", out var format) || format != Format)
            throw new InvalidDataException($"{path}: not a checkpoint (metadata format is '{format ?? "missing"}', expected '{Format}').");
        if (meta.GetValueOrDefault("version") != Version)
            throw new InvalidDataException($"{path}: checkpoint version '{meta.GetValueOrDefault("version")}' is not {Version}.");
        if (meta.GetValueOrDefault("optimizer") != optimizer.Name)
            throw new InvalidDataException($"{path}: the checkpoint is of optimizer '{meta.GetValueOrDefault("optimizer")}', not '{optimizer.Name}'.");
        if (!meta.TryGetValue(OptimizerTensors, out var listed))
            throw new InvalidDataException($"{path}: checkpoint metadata '{OptimizerTensors}' is missing (the list of the optimizer's tensors).");
        var expected = listed.Length == 0 ? [] : listed.Split(',').ToHashSet(StringComparer.Ordinal);
        var byName = file.ByName();
        var present = byName.Keys.Where(k => k.StartsWith("optimizer.", StringComparison.Ordinal)).Select(k => k[10..]).ToHashSet(StringComparer.Ordinal);
        var problems = new List<string>();
        problems.AddRange(expected.Except(present).Order(StringComparer.Ordinal).Select(n => $"optimizer tensor 'optimizer.{n}' is missing"));
        problems.AddRange(present.Except(expected).Order(StringComparer.Ordinal).Select(n => $"tensor 'optimizer.{n}' is not one the optimizer saved"));
        problems.AddRange(byName.Keys.Where(k => !k.StartsWith("model.", StringComparison.Ordinal) && !k.StartsWith("optimizer.", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal).Select(k => $"tensor '{k}' is neither model.* nor optimizer.*"));
        foreach (var (name, tensor) in byName)
            if (StateDictCheck.FirstNonFinite(tensor) is { } at) problems.Add($"tensor '{name}' holds {at.Value.ToString(System.Globalization.CultureInfo.InvariantCulture)} at element {at.Index}");
        if (problems.Count > 0)
            throw new InvalidDataException($"{path}: not a usable checkpoint: {string.Join("; ", problems.Take(10))}{(problems.Count > 10 ? $"; and {problems.Count - 10} more" : "")}.");
        check?.Invoke(meta);
        model.LoadStateDict(byName.Where(kv => kv.Key.StartsWith("model.", StringComparison.Ordinal)).ToDictionary(kv => kv.Key[6..], kv => kv.Value), path);
        // Optimizer state goes to the device the model's parameters live on.
        var device = model.Parameters().FirstOrDefault()?.Data.Device ?? CpuDevice.Instance;
        optimizer.LoadState(byName.Where(kv => kv.Key.StartsWith("optimizer.", StringComparison.Ordinal)).ToDictionary(kv => kv.Key[10..], kv => kv.Value.To(device)));
        return meta;
    }

    /// <summary>The integer metadata entry <paramref name="key"/>, or an error naming the file.</summary>
    public static long Integer(IReadOnlyDictionary<string, string> meta, string key, string path) =>
        meta.TryGetValue(key, out var v) && long.TryParse(v, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long x) ? x
            : throw new InvalidDataException($"{path}: checkpoint metadata '{key}' is missing or not an integer (it is '{v ?? "absent"}').");

    /// <summary>The integer metadata entry <paramref name="key"/>, which must lie in [<paramref name="min"/>, <paramref name="max"/>].</summary>
    public static int Integer(IReadOnlyDictionary<string, string> meta, string key, string path, int min, int max)
    {
        long x = Integer(meta, key, path);
        return x >= min && x <= max ? (int)x
            : throw new InvalidDataException($"{path}: checkpoint metadata '{key}' is {x}, outside {min} to {max}.");
    }

    /// <summary>The unsigned 64-bit metadata entry <paramref name="key"/> (a random-stream offset), or an error naming the file.</summary>
    public static ulong Unsigned(IReadOnlyDictionary<string, string> meta, string key, string path) =>
        meta.TryGetValue(key, out var v) && ulong.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out ulong x) ? x
            : throw new InvalidDataException($"{path}: checkpoint metadata '{key}' is missing or not an unsigned integer (it is '{v ?? "absent"}').");
}
