using Curvature.Engine;

namespace Curvature.Models.Data;

/// <summary>
/// A batch file of <c>interop/MODELS.md</c>: a safetensors file with <c>inputs</c> (F32 [N, 784] or [N, C, H, W],
/// or I64 token ids [N, T]) and <c>targets</c> (I64 [N] or [N, T]). The same file fed to PyTorch gives the same loss.
/// </summary>
public static class BatchFile
{
    /// <summary>Reads and checks a batch file; errors name the file and the tensor.</summary>
    public static Dataset Read(string path)
    {
        var tensors = Safetensors.Read(path).ByName();
        NdArray Get(string name) => tensors.TryGetValue(name, out var t) ? t
            : throw new InvalidDataException($"{path}: no tensor '{name}'; a batch file holds 'inputs' and 'targets' (found {(tensors.Count == 0 ? "none" : string.Join(", ", tensors.Keys.Select(k => $"'{k}'")))}).");
        var inputs = Get("inputs");
        var targets = Get("targets");
        if (targets.DType != DType.Int64) throw new InvalidDataException($"{path}: tensor 'targets' is {targets.DType.Name()}; expected I64 labels.");
        if (inputs.Rank < 2) throw new InvalidDataException($"{path}: tensor 'inputs' has shape {inputs.Shape}; expected [N, …].");
        if (targets.Rank < 1 || targets.Shape[0] != inputs.Shape[0])
            throw new InvalidDataException($"{path}: tensor 'targets' has shape {targets.Shape} but 'inputs' has {inputs.Shape[0]} rows.");
        if (StateDictCheck.FirstNonFinite(inputs) is { } bad)
            throw new InvalidDataException($"{path}: tensor 'inputs' holds {bad.Value.ToString(System.Globalization.CultureInfo.InvariantCulture)} at element {bad.Index}; expected finite values.");
        if (inputs.DType == DType.Int64)
        {
            // Token ids: targets are the next tokens, one per position.
            if (inputs.Rank != 2 || targets.Shape != inputs.Shape)
                throw new InvalidDataException($"{path}: token ids 'inputs' {inputs.Shape} need 'targets' of the same [N, T] shape, found {targets.Shape}.");
            return new Dataset(inputs, targets);
        }
        return new Dataset(inputs, targets.Rank == 1 ? targets : targets.Reshape(-1));
    }

    /// <summary>Writes a batch file (inputs and targets) atomically.</summary>
    public static void Write(string path, NdArray inputs, NdArray targets) =>
        Safetensors.Write(path, [("inputs", inputs), ("targets", targets)]);
}
