using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text.Json;
using Curvature.Engine;
using Curvature.Models;
using Curvature.Models.Data;

namespace Curvature.Tests.Lab;

/// <summary>
/// The command line against hostile input: every case is one line on standard error (no stack trace), the exit code
/// (2 usage, 1 files), a message naming what was wrong, and no file in the run's folder changed. Files are made
/// here: a finished small run to tamper with, weights and batches with NaN, huge block indices, tied copies that differ.
/// </summary>
[Collection(ThreadSettings.Name)]
public class HostileInputTests
{
    private static readonly Lazy<string> Data = new(() => LabFiles.FakeFashionMnist(train: 48, test: 8));

    /// <summary>The train arguments of the small run every resume case starts from (4 steps, checkpoints every 2); <paramref name="extra"/> adds or replaces options.</summary>
    private static string[] TrainArgs(string dir, params string[] extra) =>
        Merge(["train", "--model", "mlp", "--data", Data.Value, "--out", dir, "--steps", "4", "--batch", "16", "--width", "8", "--checkpoint-every", "2", "--eval-every", "100"], extra);

    /// <summary>The verb and options of <paramref name="baseline"/> with those of <paramref name="extra"/> added or put in their place (flags take no value).</summary>
    private static string[] Merge(string[] baseline, string[] extra)
    {
        static List<(string Key, string? Value)> Pairs(IEnumerable<string> args)
        {
            var list = new List<(string, string?)>();
            var a = args.ToArray();
            for (int i = 0; i < a.Length; i++)
                list.Add(i + 1 < a.Length && !a[i + 1].StartsWith("--", StringComparison.Ordinal) ? (a[i], a[++i]) : (a[i], null));
            return list;
        }
        var merged = Pairs(baseline.Skip(1));
        foreach (var (k, v) in Pairs(extra))
        {
            int at = merged.FindIndex(p => p.Key == k);
            if (at >= 0) merged[at] = (k, v); else merged.Add((k, v));
        }
        return [baseline[0], .. merged.SelectMany(p => p.Value is null ? new[] { p.Key } : [p.Key, p.Value])];
    }

    private static readonly Lazy<string> FinishedRun = new(() =>
    {
        var dir = Path.Combine(Scratch.NewDirectory(), "run");
        var (code, output, err) = LabCli.Run(TrainArgs(dir));
        Assert.True(code == 0, err + output);
        return dir;
    });

    /// <summary>A copy of the finished run to tamper with.</summary>
    private static string CopyOfRun()
    {
        var dir = Path.Combine(Scratch.NewDirectory(), "copy");
        Directory.CreateDirectory(dir);
        foreach (var f in Directory.GetFiles(FinishedRun.Value)) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        return dir;
    }

    private static void Tamper(string checkpoint, Func<List<(string Name, NdArray Tensor)>, List<(string Name, NdArray Tensor)>> tensors, Action<Dictionary<string, string>> meta)
    {
        var file = Safetensors.Read(checkpoint);
        var m = file.Metadata.ToDictionary();
        meta(m);
        Safetensors.Write(checkpoint, tensors(file.Tensors.ToList()), m);
    }

    private static string Mlp(string dir, Action<Dictionary<string, NdArray>>? change = null)
    {
        var state = Curvature.Models.Mlp.Create(new RandomGenerator(1), width: 4, inputs: 5, classes: 3).StateDict().ToDictionary(t => t.Name, t => t.Value);
        change?.Invoke(state);
        var path = Path.Combine(dir, "mlp.safetensors");
        Safetensors.Write(path, state.Select(kv => (kv.Key, kv.Value)).ToList(), new Dictionary<string, string> { ["model"] = "mlp", ["activation"] = "tanh" });
        return path;
    }

    private static string Gpt(string dir, Action<Dictionary<string, NdArray>>? change = null)
    {
        var gpt = new Gpt(new GptConfig(Vocabulary: 5, Context: 4, Layers: 1, Heads: 1, Width: 4), new RandomGenerator(2));
        var state = gpt.StateDict().ToDictionary(t => t.Name, t => t.Value);
        change?.Invoke(state);
        var path = Path.Combine(dir, "gpt.safetensors");
        Safetensors.Write(path, state.Select(kv => (kv.Key, kv.Value)).ToList(),
            new Dictionary<string, string> { ["model"] = "gpt", ["n_head"] = "1", ["vocabulary"] = JsonSerializer.Serialize("abcde") });
        return path;
    }

    private static string Batch(string dir, float[] inputs, long[] targets, int columns = 5)
    {
        var path = Path.Combine(dir, "batch.safetensors");
        BatchFile.Write(path, NdArray.FromArray(inputs, new Shape(inputs.Length / columns, columns)), NdArray.FromArray(targets));
        return path;
    }

    private static string Tokens(string dir, long[] ids, long[] targets)
    {
        var path = Path.Combine(dir, "tokens.safetensors");
        BatchFile.Write(path, NdArray.FromArray(ids, new Shape(1, ids.Length)), NdArray.FromArray(targets, new Shape(1, targets.Length)));
        return path;
    }

    private static readonly float[] GoodInputs = Enumerable.Range(0, 30).Select(i => (float)Math.Sin(i)).ToArray();
    private static readonly long[] GoodLabels = [0, 1, 2, 0, 1, 2];
    private static string[] SpectrumArgs(string weights, string batch, params string[] extra) =>
        Merge(["spectrum", "--weights", weights, "--batch", batch, "--topk", "1", "--iters", "3", "--probes", "1"], extra);

    /// <summary>A case: the arguments (made in a fresh folder), the exit code, the message, and the folder whose files must not change.</summary>
    private sealed record Case(string[] Args, int Code, string Message, string? Watched = null);

    private static Case Make(string name)
    {
        var dir = Scratch.NewDirectory();
        var fresh = Path.Combine(dir, "out");
        switch (name)
        {
            // Usage: exit 2 before any work (the --out folder is never created).
            case "steps not an integer": return new(TrainArgs(fresh, "--steps", "abc"), 2, "--steps: 'abc' is not an integer", fresh);
            case "steps overflowing": return new(TrainArgs(fresh, "--steps", "99999999999"), 2, "--steps: 99999999999 is out of range", fresh);
            case "steps huger than a long": return new(TrainArgs(fresh, "--steps", "123456789012345678901234"), 2, "is out of range", fresh);
            case "lr not a number": return new(TrainArgs(fresh, "--lr", "abc"), 2, "--lr: 'abc' is not a number", fresh);
            case "lr with a decimal comma": return new(TrainArgs(fresh, "--lr", "1,5"), 2, "decimals take a point: 1.5, not 1,5", fresh);
            case "lr infinite": return new(TrainArgs(fresh, "--lr", "Infinity"), 2, "--lr: Infinity is out of range", fresh);
            case "lr NaN": return new(TrainArgs(fresh, "--lr", "NaN"), 2, "--lr: NaN is out of range", fresh);
            case "lr negative": return new(TrainArgs(fresh, "--lr", "-0.1"), 2, "expected a finite number above 0", fresh);
            case "momentum 1": return new(TrainArgs(fresh, "--momentum", "1"), 2, "--momentum: 1 is out of range", fresh);
            case "epochs overflowing": return new([.. TrainArgs(fresh).Where(a => a != "--steps" && a != "4"), "--epochs", "200000000"], 2, "--epochs: 200000000 is out of range", fresh);
            case "epochs times steps overflowing":
                return new([.. TrainArgs(fresh, "--batch", "1").Where(a => a != "--steps" && a != "4"), "--epochs", "9000000"], 2, "a run takes at most 10,000,000 steps", fresh);
            case "heads 0": return new(["train", "--model", "gpt", "--heads", "0", "--steps", "2", "--out", fresh], 2, "--heads: 0 is out of range", fresh);
            case "width not divisible by the default heads": return new(["train", "--model", "gpt", "--width", "66", "--steps", "2", "--out", fresh], 2, "--width 66 is not divisible by --heads 4", fresh);
            case "seed negative": return new(TrainArgs(fresh, "--seed", "-1"), 2, "--seed: '-1' is not a seed", fresh);
            case "threads 0": return new(TrainArgs(fresh, "--threads", "0"), 2, "--threads: 0 is out of range", fresh);
            case "unknown device": return new(TrainArgs(fresh, "--device", "tpu"), 2, "--device: 'tpu' is not a device name", fresh);
            case "resume and overwrite": return new(TrainArgs(fresh, "--resume", "--overwrite"), 2, "not both", fresh);
            case "divergence factor below 1": return new(TrainArgs(fresh, "--divergence-factor", "0.5"), 2, "--divergence-factor must be 0 (off) or above 1", fresh);
            case "topk not an integer": return new(SpectrumArgs("w", "b", "--topk", "abc"), 2, "--topk: 'abc' is not an integer");
            case "compare seeds 0": return new(["compare", "--seeds", "0", "--out", fresh], 2, "--seeds: 0 is out of range", fresh);
            case "compare target with a comma": return new(["compare", "--target-val-loss", "0,5", "--out", fresh], 2, "decimals take a point", fresh);
            case "eos bad rate in a list": return new(["eos", "--lrs", "0.1,abc", "--out", fresh], 2, "--lrs: 'abc' is not a positive number", fresh);
            case "sample temperature 0": return new(["sample", "--weights", "w", "--temperature", "0"], 2, "--temperature: 0 is out of range");
            case "hvp-check n not an integer": return new(["hvp-check", "--n", "1e3"], 2, "--n: '1e3' is not an integer");
            case "sweep grid bad value": return new(["sweep", "--optimizer", "caeo", "--grid", "delta=abc", "--out", fresh], 2, "delta", fresh);

            // Files: exit 1, the file named, nothing built.
            case "huge block index":
                return new(["sample", "--weights", Gpt(dir, s => s["transformer.h.99999999.ln_1.weight"] = s["transformer.h.0.ln_1.weight"]), "--tokens", "3"], 1,
                    "the blocks are numbered 0, 99999999; expected transformer.h.0 to transformer.h.1");
            case "tied copies differ":
                return new(["sample", "--weights", Gpt(dir, s => s["lm_head.weight"] = s["transformer.wte.weight"] * 2), "--tokens", "3"], 1,
                    "'transformer.wte.weight' and 'lm_head.weight' are one tied parameter but hold different values");
            case "NaN weight in sample":
                return new(["sample", "--weights", Gpt(dir, s => s["transformer.ln_f.weight"] = NdArray.FromArray(new[] { 1f, float.NaN, 1f, 1f })), "--tokens", "3"], 1,
                    "tensor 'transformer.ln_f.weight' holds NaN at element 1");
            case "infinite weight in spectrum":
                return new(SpectrumArgs(Mlp(dir, s => s["1.bias"] = NdArray.FromArray(new[] { 0f, float.PositiveInfinity, 0f, 0f })), Batch(dir, GoodInputs, GoodLabels)), 1,
                    "tensor '1.bias' holds Infinity at element 1");
            case "NaN in batch inputs":
                return new(SpectrumArgs(Mlp(dir), Batch(dir, GoodInputs.Select((v, i) => i == 7 ? float.NaN : v).ToArray(), GoodLabels)), 1,
                    "batch.safetensors: tensor 'inputs' holds NaN at element 7");
            case "label out of range":
                return new(SpectrumArgs(Mlp(dir), Batch(dir, GoodInputs, [0, 1, 2, 12, 1, 2])), 1, "batch.safetensors: 'targets' element 3 is label 12, outside the model's 3 classes");
            case "batch of the wrong width":
                return new(SpectrumArgs(Mlp(dir), Batch(dir, Enumerable.Repeat(0.5f, 42).ToArray(), GoodLabels, columns: 7)), 1, "batch.safetensors: 'inputs' [6, 7] do not fit the model");
            case "token id out of range":
                return new(SpectrumArgs(Gpt(dir), Tokens(dir, [0, 1, 999], [1, 2, 3])), 1, "tokens.safetensors: 'inputs' element 2 is token id 999, outside the vocabulary (0 to 4)");
            case "weights of another model kind":
                return new(SpectrumArgs(Mlp(dir), Batch(dir, GoodInputs, GoodLabels), "--model", "gpt"), 1, "this file holds a mlp model (its __metadata__ says so), not a gpt");
            case "weights path is a folder": return new(SpectrumArgs(dir, Batch(dir, GoodInputs, GoodLabels)), 1, "is a folder; expected a safetensors file");
            case "weights garbage":
            {
                var junk = Path.Combine(dir, "junk.safetensors");
                File.WriteAllText(junk, "this is a text file, long enough to be read as a header length");
                return new(SpectrumArgs(junk, Batch(dir, GoodInputs, GoodLabels)), 1, "junk.safetensors: not a safetensors file");
            }
            case "noise minibatch larger than the batch":
                return new(["noise", "--weights", Mlp(dir), "--batch", Batch(dir, GoodInputs, GoodLabels), "--minibatch", "7", "--topk", "1", "--iters", "3"], 2,
                    "--minibatch 7 is larger than the batch's 6 examples");
            case "noise samples 0": return new(["noise", "--weights", "w", "--batch", "b", "--samples", "0"], 2, "--samples: 0 is out of range");
            case "noise NaN in batch inputs":
                return new(["noise", "--weights", Mlp(dir), "--batch", Batch(dir, GoodInputs.Select((v, i) => i == 3 ? float.PositiveInfinity : v).ToArray(), GoodLabels)], 1,
                    "tensor 'inputs' holds Infinity at element 3");
            case "json folder missing": return new(TrainArgs(fresh, "--json", Path.Combine(dir, "nowhere", "s.json")), 1, "--json", fresh);
            case "json is a folder": return new(TrainArgs(fresh, "--json", dir), 1, "is a folder; expected a file path", fresh);
            case "out is a file":
            {
                var file = Path.Combine(dir, "plain");
                File.WriteAllText(file, "x");
                return new(TrainArgs(file), 1, "is a file; expected a folder");
            }

            // Resume: refused naming what differs or what is damaged; the run's files untouched.
            case "resume with another lr": { var d = CopyOfRun(); return new(TrainArgs(d, "--resume", "--steps", "6", "--lr", "0.07"), 1, "belongs to another run: it has lr '0.05' (this run: '0.07')", d); }
            case "resume with another batch": { var d = CopyOfRun(); return new(TrainArgs(d, "--resume", "--steps", "6", "--batch", "8"), 1, "batch '16' (this run: '8')", d); }
            case "resume with another seed": { var d = CopyOfRun(); return new(TrainArgs(d, "--resume", "--steps", "6", "--seed", "3"), 1, "seed '0' (this run: '3')", d); }
            case "resume with another momentum": { var d = CopyOfRun(); return new(TrainArgs(d, "--resume", "--steps", "6", "--momentum", "0.8"), 1, "momentum '0.9' (this run: '0.8')", d); }
            case "resume with another activation": { var d = CopyOfRun(); return new(TrainArgs(d, "--resume", "--steps", "6", "--activation", "relu"), 1, "(this run: 'MLP 784-8-8-10 relu", d); }
            case "resume on other data of the same size":
            {
                var d = CopyOfRun();
                return new(TrainArgs(d, "--resume", "--steps", "6", "--data", LabFiles.FakeFashionMnist(train: 48, test: 8, seed: 2)), 1, "belongs to another run: it has data '", d);
            }
            case "checkpoint without seconds":
            {
                var d = CopyOfRun();
                Tamper(Path.Combine(d, "checkpoint.safetensors"), t => t, m => m.Remove("seconds"));
                return new(TrainArgs(d, "--resume", "--steps", "6"), 1, "checkpoint metadata 'seconds' is missing", d);
            }
            case "checkpoint step beyond int":
            {
                var d = CopyOfRun();
                Tamper(Path.Combine(d, "checkpoint.safetensors"), t => t, m => m["step"] = "4294967301");
                return new(TrainArgs(d, "--resume", "--steps", "6"), 1, "the checkpoint is at step 4294967301, outside the run's 0 to 6 steps", d);
            }
            case "checkpoint position out of range":
            {
                var d = CopyOfRun();
                Tamper(Path.Combine(d, "checkpoint.safetensors"), t => t, m => m["position"] = "999999");
                return new(TrainArgs(d, "--resume", "--steps", "6"), 1, "checkpoint metadata 'position' is 999999, outside 0 to 48", d);
            }
            case "checkpoint missing an optimizer tensor":
            {
                var d = CopyOfRun();
                string? dropped = null;
                Tamper(Path.Combine(d, "checkpoint.safetensors"), t => t.Where(x => !(x.Name.StartsWith("optimizer.", StringComparison.Ordinal) && (dropped ??= x.Name) == x.Name)).ToList(), _ => { });
                return new(TrainArgs(d, "--resume", "--steps", "6"), 1, $"optimizer tensor '{dropped}' is missing", d);
            }
            case "checkpoint with an unknown tensor":
            {
                var d = CopyOfRun();
                Tamper(Path.Combine(d, "checkpoint.safetensors"), t => [.. t, ("optimizer.velocity.9999", NdArray.FromArray(new[] { 1f }))], _ => { });
                return new(TrainArgs(d, "--resume", "--steps", "6"), 1, "tensor 'optimizer.velocity.9999' is not one the optimizer saved", d);
            }
            case "checkpoint with NaN weights":
            {
                var d = CopyOfRun();
                Tamper(Path.Combine(d, "checkpoint.safetensors"), t => t.Select(x => x.Name == "model.1.bias" ? (x.Name, NdArray.FromArray(Enumerable.Repeat(float.NaN, 8).ToArray())) : x).ToList(), _ => { });
                return new(TrainArgs(d, "--resume", "--steps", "6"), 1, "tensor 'model.1.bias' holds NaN at element 0", d);
            }
            case "malformed steps.csv":
            {
                var d = CopyOfRun();
                var lines = File.ReadAllLines(Path.Combine(d, "steps.csv"));
                lines[2] = string.Join(',', lines[2].Split(',').Select((f, i) => i == 1 ? "abc" : f));
                File.WriteAllLines(Path.Combine(d, "steps.csv"), lines);
                return new(TrainArgs(d, "--resume", "--steps", "6"), 1, "steps.csv, line 3: 'abc' in column loss is not a number", d);
            }
            case "a second run into a finished one": { var d = CopyOfRun(); return new(TrainArgs(d), 1, "holds another run's files (checkpoint.safetensors", d); }
            case "a folder in use":
            {
                var d = CopyOfRun();
                using var me = Process.GetCurrentProcess();
                File.WriteAllText(Path.Combine(d, ".lock"), $"{Environment.ProcessId} {me.StartTime.ToUniversalTime().Ticks}\n");
                return new(TrainArgs(d, "--resume", "--steps", "6"), 1, $"is in use by process {Environment.ProcessId}", d);
            }
            default: throw new ArgumentException(name);
        }
    }

    public static TheoryData<string> Cases() =>
    [
        "steps not an integer", "steps overflowing", "steps huger than a long", "lr not a number", "lr with a decimal comma", "lr infinite", "lr NaN", "lr negative",
        "momentum 1", "epochs overflowing", "epochs times steps overflowing", "heads 0", "width not divisible by the default heads", "seed negative", "threads 0", "unknown device", "resume and overwrite",
        "divergence factor below 1", "topk not an integer", "compare seeds 0", "compare target with a comma", "eos bad rate in a list", "sample temperature 0",
        "hvp-check n not an integer", "sweep grid bad value",
        "huge block index", "tied copies differ", "NaN weight in sample", "infinite weight in spectrum", "NaN in batch inputs", "label out of range",
        "batch of the wrong width", "token id out of range", "weights of another model kind", "weights path is a folder", "weights garbage",
        "noise minibatch larger than the batch", "noise samples 0", "noise NaN in batch inputs",
        "json folder missing", "json is a folder", "out is a file",
        "resume with another lr", "resume with another batch", "resume with another seed", "resume with another momentum", "resume with another activation", "resume on other data of the same size",
        "checkpoint without seconds", "checkpoint step beyond int", "checkpoint position out of range", "checkpoint missing an optimizer tensor",
        "checkpoint with an unknown tensor", "checkpoint with NaN weights", "malformed steps.csv", "a second run into a finished one", "a folder in use",
    ];

    private static Dictionary<string, string> Snapshot(string? dir) =>
        dir is null || !Directory.Exists(dir) ? []
            : Directory.GetFiles(dir, "*", SearchOption.AllDirectories).ToDictionary(f => Path.GetRelativePath(dir, f), f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f))));

    [Theory]
    [MemberData(nameof(Cases))]
    public void Bad_input_is_one_line_with_its_exit_code_and_changes_nothing(string name)
    {
        var c = Make(name);
        bool existed = c.Watched is not null && Path.Exists(c.Watched);
        var before = Snapshot(c.Watched);
        var (code, output, err) = LabCli.Run(c.Args);
        Assert.True(code == c.Code, $"{name}: exit {code}, expected {c.Code}\n{err}\n{output}");
        Assert.Contains(c.Message, err);
        Assert.DoesNotContain("   at ", err);                                       // no stack trace
        Assert.Single(err.Trim().Split('\n'));                                      // one line
        Assert.Equal(before, Snapshot(c.Watched));                                  // nothing written, nothing lost
        if (!existed && c.Watched is not null) Assert.False(Path.Exists(c.Watched), $"{name}: {c.Watched} was created");
    }

    [Fact]
    public void A_loss_far_above_the_first_stops_the_run_keeping_a_sound_checkpoint()
    {
        var dir = Path.Combine(Scratch.NewDirectory(), "blowup");
        var (code, _, err) = LabCli.Run(TrainArgs(dir, "--lr", "1e30", "--steps", "30", "--checkpoint-every", "1"));
        Assert.Equal(1, code);
        Assert.Contains("× the first loss", err);
        Assert.Contains("stopping", err);
        Assert.DoesNotContain("   at ", err);
        // The checkpoint kept (when the blow-up came after one was due) holds finite weights whose loss was within the bound.
        var ckpt = Path.Combine(dir, "checkpoint.safetensors");
        if (File.Exists(ckpt))
            foreach (var (n, t) in Safetensors.Read(ckpt).Tensors) Assert.Null(StateDictCheck.FirstNonFinite(t));
        // With the bound off, the same run finishes (a finite blow-up is then the user's call).
        var off = Path.Combine(Scratch.NewDirectory(), "off");
        (code, _, err) = LabCli.Run(TrainArgs(off, "--lr", "1e3", "--steps", "3", "--divergence-factor", "0"));
        Assert.True(code is 0 or 1, err);
    }

    [Fact]
    public void A_stale_lock_and_orphan_temporaries_of_dead_processes_are_cleared()
    {
        var d = CopyOfRun();
        File.WriteAllText(Path.Combine(d, ".lock"), "2147483646 0\n");                  // a process that does not exist
        var orphan = Path.Combine(d, $".steps.csv.2147483646.{Guid.NewGuid():N}.tmp");
        File.WriteAllText(orphan, "half a file");
        var (code, output, err) = LabCli.Run(TrainArgs(d, "--resume", "--steps", "6"));
        Assert.True(code == 0, err + output);
        Assert.False(File.Exists(orphan));
        Assert.False(File.Exists(Path.Combine(d, ".lock")));                           // released at the end
        Assert.Equal(1 + 6, File.ReadAllLines(Path.Combine(d, "steps.csv")).Length);
        // --overwrite replaces the run: the log starts afresh.
        (code, output, err) = LabCli.Run(TrainArgs(d, "--overwrite", "--steps", "3"));
        Assert.True(code == 0, err + output);
        Assert.Equal(1 + 3, File.ReadAllLines(Path.Combine(d, "steps.csv")).Length);
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int signal);

    [Fact]
    public void Sigterm_checkpoints_after_the_step_and_the_resumed_run_equals_an_uninterrupted_one()
    {
        if (!OperatingSystem.IsLinux()) return;
        var lab = Path.Combine(AppContext.BaseDirectory, "Lab");
        string[] Args(string dir, params string[] extra) =>
            ["train", "--model", "mlp", "--data", Data.Value, "--out", dir, "--steps", "6000", "--batch", "16", "--width", "4", "--checkpoint-every", "1000",
             "--eval-every", "100000", "--threads", "1", .. extra];
        var parts = Path.Combine(Scratch.NewDirectory(), "parts");
        var info = new ProcessStartInfo(lab) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in Args(parts)) info.ArgumentList.Add(a);
        using var child = Process.Start(info)!;
        // Wait for the run to be under way (its first progress line), then ask it to stop.
        string? line;
        while ((line = child.StandardOutput.ReadLine()) is not null && !line.Contains("/6000", StringComparison.Ordinal)) { }
        Assert.NotNull(line);
        Assert.Equal(0, kill(child.Id, 15));
        string rest = child.StandardOutput.ReadToEnd(), err = child.StandardError.ReadToEnd();
        child.WaitForExit();
        if (child.ExitCode == 0) return;                                               // it finished before the signal landed: nothing to test on this machine
        Assert.True(child.ExitCode == 143, $"exit {child.ExitCode}: {err}{rest}");
        var m = System.Text.RegularExpressions.Regex.Match(err, @"interrupted at step (\d+); checkpoint written; continue with --resume");
        Assert.True(m.Success, err);
        int at = int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(at.ToString(System.Globalization.CultureInfo.InvariantCulture), Safetensors.Read(Path.Combine(parts, "checkpoint.safetensors")).Metadata["step"]);
        Assert.Equal(1 + at, File.ReadAllLines(Path.Combine(parts, "steps.csv")).Length);
        var (code, output, e2) = LabCli.Run(Args(parts, "--resume"));
        Assert.True(code == 0, e2 + output);
        var whole = Path.Combine(Scratch.NewDirectory(), "whole");
        (code, output, e2) = LabCli.Run(Args(whole));
        Assert.True(code == 0, e2 + output);
        Assert.Equal(File.ReadAllBytes(Path.Combine(whole, "model.safetensors")), File.ReadAllBytes(Path.Combine(parts, "model.safetensors")));
        string Losses(string d) => string.Join('\n', File.ReadAllLines(Path.Combine(d, "steps.csv")).Select(l => string.Join(',', l.Split(',')[..^1])));
        Assert.Equal(Losses(whole), Losses(parts));                                    // every column but the wall-clock
    }
}
