using System.CommandLine;
using Curvature.Engine;
using Curvature.Models.Data;
using Curvature.Training;

namespace Curvature.Lab;

/// <summary>
/// <c>Lab batch</c>: writes the batch file <c>spectrum --batch</c> reads (safetensors with <c>inputs</c> and
/// <c>targets</c>): N examples of a task's train, val or test split, drawn from a seeded stream, in the shapes the
/// task's model takes (the MLP's flat [N, 784], the ResNet's [N, 1, 28, 28], the GPT's token ids [N, T] with the
/// next tokens as targets).
/// </summary>
public static class Batch
{
    internal static Command Command(TextWriter output)
    {
        var common = new Cli.CommonOptions();
        var task = Options.OneOf("--task", "Task whose data and shapes the batch takes", "mlp-fmnist", TrainingTask.Names);
        var split = Options.OneOf("--split", "train, val (images: the last --val training images, never trained on; text: the validation windows) or test", "train", TrainingTask.Splits);
        var n = Options.Int("--n", "Examples (sequences for gpt-shakespeare)", 128, max: 100_000);
        var validation = Options.Int("--val", "Image tasks: the last N training images form the val split (as in compare)", 5000, min: 0);
        var context = Options.Int("--context", "gpt-shakespeare: window length T", 128, max: 65536);
        var data = Options.FashionMnistFolder();
        var text = new Option<string>("--text") { Description = "gpt-shakespeare: the character corpus", DefaultValueFactory = _ => Train.DefaultTextPath() };
        var outPath = new Option<string>("--out") { Description = "The batch file to write (safetensors)", Required = true };
        var cmd = new Command("batch", "Write a batch file (inputs, targets) of a task's split for spectrum --batch");
        foreach (var o in new Option[] { task, split, n, validation, context, data, text, outPath }) cmd.Options.Add(o);
        common.AddTo(cmd);
        cmd.SetAction(r =>
        {
            string path = r.GetValue(outPath)!, name = r.GetValue(task)!;
            Cli.RequireWritableFile(path, "--out");
            bool isText = name == "gpt-shakespeare";
            var t = TrainingTask.Create(name, r.GetValue(data)!, r.GetValue(text)!, batch: 1, validation: isText ? 0 : r.GetValue(validation),
                gpt: new Models.GptConfig(Context: r.GetValue(context), Layers: 1, Heads: 1, Width: 8));
            var (inputs, targets) = t.Sample(r.GetValue(split)!, r.GetValue(n), r.GetValue(common.Seed));
            BatchFile.Write(path, inputs, targets);
            output.WriteLine($"batch: {inputs.Shape[0]} examples of {name}'s {r.GetValue(split)} split (seed {r.GetValue(common.Seed)}): " +
                             $"inputs {inputs.DType.Name()} {inputs.Shape}, targets {targets.DType.Name()} {targets.Shape}; wrote {path}");
            return 0;
        });
        return cmd;
    }
}
