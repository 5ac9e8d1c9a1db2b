using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using ILGPU.Runtime.OpenCL;

namespace Curvature.Engine;

/// <summary>
/// Finds and opens devices by the names the Lab's <c>--device</c> option takes: <c>cpu</c> (our SIMD kernels),
/// <c>cuda</c>/<c>cuda:N</c> and <c>opencl</c>/<c>opencl:N</c> (ILGPU), <c>ilgpu-cpu</c> (ILGPU's CPU accelerator,
/// which runs the GPU kernels on emulated threads: for tests, not speed), and <c>auto</c> (CUDA when present,
/// else the CPU). A device is opened once per process and kept; asking for one that is not present is an
/// error that lists what was found, never a silent fallback.
/// </summary>
public static class DeviceCatalog
{
    private static readonly Lock Gate = new();
    private static readonly Dictionary<string, AcceleratorDevice> Open = [];
    private static Context? context;

    /// <summary>The names <c>--device</c> accepts.</summary>
    public const string Choices = "auto, cpu, cuda, cuda:N, opencl, opencl:N, ilgpu-cpu";

    private static Context Context
    {
        get
        {
            lock (Gate)
            {
                // OpenCL devices that ILGPU cannot compile for (no generic address space, as Debian's PoCL) are
                // left out by ILGPU's own capability check.
                return context ??= Context.Create(b => Compiler(b.CPU().Cuda().OpenCL()));
            }
        }
    }

    /// <summary>
    /// How every context of this engine compiles kernels: IEEE math (no fast-math) and ILGPU's O1 optimizations.
    /// The kernels take exp, log, tanh, sin, cos and pow from <see cref="Curvature.Kernels.ScalarMath"/>, not from
    /// <see cref="Math"/>: ILGPU's CUDA backend has no implementation of those of its own (ILGPU.Algorithms supplies
    /// approximate ones). Tests compile every kernel for CUDA with this configuration, which needs no GPU.
    /// </summary>
    public static Context.Builder Compiler(Context.Builder builder) =>
        builder.Math(MathMode.Default).Optimize(OptimizationLevel.O1);

    /// <summary>The ILGPU accelerators present, by the name <see cref="Resolve(string)"/> takes, with a description.</summary>
    public static IReadOnlyList<(string Name, string Description)> Accelerators()
    {
        var found = new List<(string, string)>();
        int cuda = 0, cl = 0;
        foreach (var d in Context.Devices)
        {
            switch (d.AcceleratorType)
            {
                case AcceleratorType.Cuda: found.Add(($"cuda:{cuda++}", d.Name)); break;
                case AcceleratorType.OpenCL: found.Add(($"opencl:{cl++}", d.Name)); break;
            }
        }
        found.Add(("ilgpu-cpu", "ILGPU CPU accelerator (runs the GPU kernels on emulated threads; for tests)"));
        return found;
    }

    /// <summary>
    /// Whether <paramref name="name"/> is a device name at all (auto, cpu, ilgpu-cpu, cuda, opencl, cuda:N,
    /// opencl:N), whether or not such a device is present: a misspelt name is a usage error, an absent device a
    /// runtime one.
    /// </summary>
    public static bool IsDeviceName(string name)
    {
        string n = name.Trim().ToLowerInvariant();
        if (n is "auto" or "cpu" or "ilgpu-cpu" or "cuda" or "opencl") return true;
        int colon = n.IndexOf(':');
        return colon > 0 && n[..colon] is "cuda" or "opencl" && n.Length > colon + 1 && n.Length - colon - 1 <= 3
               && n[(colon + 1)..].All(char.IsAsciiDigit);
    }

    /// <summary>
    /// The device named <paramref name="name"/>; <paramref name="choice"/> says what was chosen (for <c>auto</c>,
    /// which device and why). Throws <see cref="ArgumentException"/> naming the request and listing the devices
    /// found when it is not present.
    /// </summary>
    public static Device Resolve(string name, out string choice)
    {
        string n = name.Trim().ToLowerInvariant();
        if (n == "cpu")
        {
            choice = $"device: cpu ({Environment.ProcessorCount} cores, SIMD kernels)";
            return CpuDevice.Instance;
        }
        if (n == "auto")
        {
            if (Context.Devices.Any(d => d.AcceleratorType == AcceleratorType.Cuda))
            {
                var device = OpenAccelerator("cuda:0");
                choice = $"device: auto chose cuda:0 ({device.Accelerator.Name})";
                return device;
            }
            choice = $"device: auto chose cpu (no CUDA device found; {Environment.ProcessorCount} cores)";
            return CpuDevice.Instance;
        }
        if (n == "cuda" || n == "opencl") n += ":0";
        if (n == "ilgpu-cpu" || n.StartsWith("cuda:", StringComparison.Ordinal) || n.StartsWith("opencl:", StringComparison.Ordinal))
        {
            var device = OpenAccelerator(n);
            choice = $"device: {n} ({device.Accelerator.Name})";
            return device;
        }
        throw new ArgumentException($"Unknown device '{name}'; expected one of {Choices}. {Found()}");
    }

    /// <summary>The device named <paramref name="name"/>, without the choice message.</summary>
    public static Device Resolve(string name) => Resolve(name, out _);

    /// <summary>ILGPU's CPU accelerator as a device (what the conformance tests run the GPU kernels on).</summary>
    public static AcceleratorDevice IlgpuCpu => OpenAccelerator("ilgpu-cpu");

    private static string Found() =>
        "Devices found: cpu, " + string.Join(", ", Accelerators().Select(a => $"{a.Name} ({a.Description})")) + ".";

    private static AcceleratorDevice OpenAccelerator(string name)
    {
        lock (Gate)
        {
            if (Open.TryGetValue(name, out var open)) return open;
            Accelerator accelerator;
            if (name == "ilgpu-cpu")
            {
                // Four threads per warp, four warps, one multiprocessor: groups of up to 16 emulated threads. More
                // emulated threads only add context switches on a small machine.
                accelerator = new CPUDevice(4, 4, 1).CreateCPUAccelerator(Context, CPUAcceleratorMode.Parallel);
            }
            else
            {
                var type = name.StartsWith("cuda", StringComparison.Ordinal) ? AcceleratorType.Cuda : AcceleratorType.OpenCL;
                if (!int.TryParse(name[(name.IndexOf(':') + 1)..], out int index) || index < 0)
                    throw new ArgumentException($"Device '{name}': expected a non-negative index after the colon, as in cuda:0.");
                var devices = Context.Devices.Where(d => d.AcceleratorType == type).ToList();
                if (index >= devices.Count)
                    throw new ArgumentException($"Device '{name}' is not present. {Found()}");
                accelerator = devices[index].CreateAccelerator(Context);
            }
            var device = new AcceleratorDevice(accelerator, name);
            Open[name] = device;
            return device;
        }
    }
}
