using System.Globalization;
using Curvature.Engine;
using Curvature.Models;

namespace Curvature.Optimizers;

/// <summary>
/// A training checkpoint: one safetensors file with the model's state dict (<c>model.*</c>), the optimiser's
/// state (<c>optimizer.*</c>) and string metadata holding the format version, the step and whatever else the
/// run needs to continue exactly (random-stream offsets, the data cursor, the options). Written atomically
/// (temporary file, flush, rename), so a crash leaves the previous checkpoint intact.
/// </summary>
public static class Checkpoint
{
    /// <summary>The format tag and version in every checkpoint.</summary>
    public const string Format = "curvature-checkpoint", Version = "1";

    /// <summary>Writes a checkpoint of <paramref name="model"/> and <paramref name="optimizer"/> at <paramref name="step"/>.</summary>
    public static void Save(string path, Module model, IOptimizer optimizer, int step, IReadOnlyDictionary<string, string> metadata)
    {
        var tensors = model.StateDict().Select(t => ("model." + t.Name, t.Value))
            .Concat(optimizer.State().Select(t => ("optimizer." + t.Name, t.Value))).ToList();
        var meta = new Dictionary<string, string>(metadata)
        {
            ["format"] = Format,
            ["version"] = Version,
            ["optimizer"] = optimizer.Name,
            ["step"] = step.ToString(CultureInfo.InvariantCulture),
        };
        Safetensors.Write(path, tensors, meta);
    }

    /// <summary>
    /// Restores the model and optimiser from a checkpoint and returns its metadata; the step is under "step".
    /// Errors name the file: not a checkpoint, another version, another optimiser, a model that does not fit.
    /// <paramref name="check"/> sees the metadata before anything is restored (a run's identity), and throws to refuse it.
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
        check?.Invoke(meta);
        var byName = file.ByName();
        model.LoadStateDict(byName.Where(kv => kv.Key.StartsWith("model.", StringComparison.Ordinal)).ToDictionary(kv => kv.Key[6..], kv => kv.Value), path);
        // Optimizer state goes to the device the model's parameters live on.
        var device = model.Parameters().FirstOrDefault()?.Value.Device ?? CpuDevice.Instance;
        optimizer.LoadState(byName.Where(kv => kv.Key.StartsWith("optimizer.", StringComparison.Ordinal)).ToDictionary(kv => kv.Key[10..], kv => kv.Value.To(device)));
        return meta;
    }

    /// <summary>The integer metadata entry <paramref name="key"/>, or an error naming the file.</summary>
    public static long Integer(IReadOnlyDictionary<string, string> meta, string key, string path) =>
        meta.TryGetValue(key, out var v) && long.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out long x) ? x
            : throw new InvalidDataException($"{path}: checkpoint metadata '{key}' is missing or not an integer.");
}
