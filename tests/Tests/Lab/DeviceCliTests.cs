using System.Globalization;
using Curvature.Engine;

namespace Curvature.Tests.Lab;

/// <summary>--device on the Lab verbs: the choice is said, absent devices are named with what was found, and a
/// run on ILGPU's CPU accelerator gives the CPU's numbers.</summary>
[Collection(ThreadSettings.Name)]
public class DeviceCliTests
{
    private static double[] Losses(string dir) =>
        File.ReadAllLines(Path.Combine(dir, "steps.csv")).Skip(1).Select(l => double.Parse(l.Split(',')[1], CultureInfo.InvariantCulture)).ToArray();

    [Fact]
    public void Training_on_the_ilgpu_device_follows_the_cpu_run()
    {
        var data = LabFiles.FakeFashionMnist(train: 32, test: 8);
        var root = Scratch.NewDirectory();
        string[] Args(string device) => ["train", "--model", "mlp", "--data", data, "--out", Path.Combine(root, device), "--steps", "4", "--batch", "8",
            "--width", "16", "--lr", "0.05", "--eval-every", "2", "--device", device];
        var cpu = LabCli.Run(Args("cpu"));
        Assert.True(cpu.Code == 0, cpu.Err + cpu.Out);
        Assert.Contains("device: cpu", cpu.Out);
        var gpu = LabCli.Run(Args("ilgpu-cpu"));
        Assert.True(gpu.Code == 0, gpu.Err + gpu.Out);
        Assert.Contains("device: ilgpu-cpu", gpu.Out);
        double[] a = Losses(Path.Combine(root, "cpu")), b = Losses(Path.Combine(root, "ilgpu-cpu"));
        Assert.Equal(a.Length, b.Length);
        for (int i = 0; i < a.Length; i++) Assert.True(Math.Abs(a[i] - b[i]) <= 1e-4 * Math.Abs(a[i]), $"step {i}: cpu {a[i]}, ilgpu-cpu {b[i]}");
        Assert.True(File.Exists(Path.Combine(root, "ilgpu-cpu", "model.safetensors")));
    }

    [Fact]
    public void Hvp_check_runs_on_the_ilgpu_device()
    {
        var (code, output, err) = LabCli.Run("hvp-check", "--model", "mlp", "--n", "8", "--width", "8", "--repeats", "1", "--device", "ilgpu-cpu");
        Assert.True(code == 0, err + output);
        Assert.Contains("device: ilgpu-cpu", output);
        Assert.Contains("HVP / gradient", output);
    }

    [Fact]
    public void An_absent_device_is_named_with_the_devices_found_and_nothing_runs()
    {
        if (DeviceCatalog.Accelerators().Any(a => a.Name == "cuda:0")) return; // the machine has one: nothing to refuse
        var dir = Path.Combine(Scratch.NewDirectory(), "never");
        var (code, _, err) = LabCli.Run("hvp-check", "--model", "mlp", "--n", "8", "--device", "cuda");
        Assert.Equal(1, code);
        Assert.Contains("'cuda:0' is not present", err);
        Assert.Contains("Devices found: cpu", err);
        Assert.Single(err.Trim().Split('\n'));
        var (code2, _, err2) = LabCli.Run("eos", "--quick", "--out", dir, "--device", "gpu");
        Assert.Equal(2, code2);                                  // a misspelt name is usage; an absent device (above) is a runtime error
        Assert.Contains("--device: 'gpu' is not a device name", err2);
        Assert.False(Directory.Exists(dir));
    }
}
