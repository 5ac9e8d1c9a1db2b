using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Curvature.Bench;

/// <summary>
/// OpenBLAS's <c>cblas_sgemm</c> through P/Invoke: the baseline timed in the same run as our kernels. Debian's
/// <c>libopenblas0-pthread</c> installs it under openblas-pthread/; we load that file by path so the reference
/// BLAS (if it is the default alternative) is never picked by mistake.
/// </summary>
internal static unsafe class OpenBlas
{
    private const int RowMajor = 101, NoTrans = 111, Trans = 112;
    private static readonly string[] Candidates =
    [
        "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0",
        "/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3",
        "libopenblas.so.0",
    ];

    private static delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void> sgemm;
    private static delegate* unmanaged<int, void> setThreads;
    private static delegate* unmanaged<int> getThreads;
    private static delegate* unmanaged<byte*> coreName;

    /// <summary>
    /// The variables that pin OpenBLAS's kernel choice (this machine's environment sets OPENBLAS_CORETYPE=Haswell,
    /// the AVX2 kernel at about half the AVX-512 one's rate): a baseline must run without them.
    /// </summary>
    internal static readonly string[] OverrideVariables = ["OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"];

    /// <summary>The override variables set in this process's environment, as NAME=value.</summary>
    public static string[] Overrides() =>
        OverrideVariables.Where(v => Environment.GetEnvironmentVariable(v) is not null).Select(v => $"{v}={Environment.GetEnvironmentVariable(v)}").ToArray();

    /// <summary>Set in a run the Bench started again with a kernel pinned: the choice is made, keep it.</summary>
    private const string PinnedMarker = "CURVATURE_BENCH_OPENBLAS_PINNED";

    /// <summary>What <see cref="Prepare"/> did, for the tables' headers.</summary>
    public static string Choice { get; private set; } = "not loaded";

    /// <summary>
    /// Makes OpenBLAS's best kernel for this CPU the baseline, before anything loads it: removes the override variables
    /// from the process's native environment (OpenBLAS reads them once, when it loads), loads it and reads the kernel
    /// it detected. OpenBLAS releases older than the CPU fall back to a generic kernel (0.3.21 on a Xeon of model 207:
    /// Prescott, SSE3, at a fifth of the AVX-512 rate): then the program runs again with OPENBLAS_CORETYPE set to the
    /// newest kernel the CPU's features support, and says so. Returns that run's exit code, or null to go on here.
    /// </summary>
    public static int? Prepare(string[] args)
    {
        var removed = Overrides();
        if (Environment.GetEnvironmentVariable(PinnedMarker) is { } pinned)
        {
            if (!TryLoad()) return null;
            Choice = $"{CoreName} (pinned: OpenBLAS detected {pinned}, below this CPU's {BestKernel()})";
            return null;
        }
        foreach (var v in OverrideVariables)
        {
            unsetenv(v);
            Environment.SetEnvironmentVariable(v, null);
        }
        string note = removed.Length > 0 ? $"; removed {string.Join(", ", removed)} for this benchmark" : "";
        if (!TryLoad()) return null;
        string detected = CoreName, best = BestKernel();
        if (Rank(detected) >= Rank(best))
        {
            Choice = $"{detected} (detected{note})";
            return null;
        }
        Console.WriteLine($"OpenBLAS detected the {detected} kernel, below what this CPU runs ({best}): running again with OPENBLAS_CORETYPE={best}{note}");
        Console.Out.Flush();
        var self = Environment.ProcessPath!;
        var info = new ProcessStartInfo(self) { UseShellExecute = false };
        // Under `dotnet Bench.dll` the process is the host: pass the assembly first.
        if (Path.GetFileNameWithoutExtension(self) == "dotnet") info.ArgumentList.Add(typeof(OpenBlas).Assembly.Location);
        foreach (var a in args) info.ArgumentList.Add(a);
        ApplyTo(info);
        info.Environment["OPENBLAS_CORETYPE"] = best;
        info.Environment[PinnedMarker] = detected;
        using var child = Process.Start(info)!;
        child.WaitForExit();
        return child.ExitCode;
    }

    /// <summary>Gives a child process the baseline's OpenBLAS environment (no overrides, or the pinned kernel).</summary>
    public static void ApplyTo(ProcessStartInfo info)
    {
        foreach (var v in OverrideVariables) info.Environment.Remove(v);
        if (Environment.GetEnvironmentVariable(PinnedMarker) is not null) info.Environment["OPENBLAS_CORETYPE"] = CoreName;
    }

    /// <summary>The newest OpenBLAS x86-64 kernel this CPU's features run: Cooperlake (AVX-512 with BF16), SkylakeX (AVX-512), Haswell (AVX2, FMA).</summary>
    internal static string BestKernel()
    {
        if (System.Runtime.Intrinsics.X86.Avx512F.IsSupported && System.Runtime.Intrinsics.X86.Avx512BW.IsSupported
            && System.Runtime.Intrinsics.X86.Avx512DQ.IsSupported && System.Runtime.Intrinsics.X86.Avx512F.VL.IsSupported)
        {
            // CPUID leaf 7, sub-leaf 1, EAX bit 5: AVX512_BF16.
            bool bf16 = (System.Runtime.Intrinsics.X86.X86Base.CpuId(7, 1).Eax & (1 << 5)) != 0;
            return bf16 ? "Cooperlake" : "SkylakeX";
        }
        if (System.Runtime.Intrinsics.X86.Avx2.IsSupported && System.Runtime.Intrinsics.X86.Fma.IsSupported) return "Haswell";
        return "Prescott";
    }

    /// <summary>A kernel's vector generation: 3 AVX-512, 2 AVX2 (Haswell and its successors, Zen), 1 older.</summary>
    internal static int Rank(string core) => core.ToUpperInvariant() switch
    {
        "SKYLAKEX" or "COOPERLAKE" or "SAPPHIRERAPIDS" => 3,
        "HASWELL" or "ZEN" or "SKYLAKE" => 2,
        _ => 1,
    };

    [DllImport("libc", EntryPoint = "unsetenv")]
    private static extern int unsetenv([MarshalAs(UnmanagedType.LPStr)] string name);

    /// <summary>The kernel OpenBLAS chose for this CPU (openblas_get_corename), or "unknown".</summary>
    public static string CoreName => TryLoad() && coreName != null ? Marshal.PtrToStringAnsi((nint)coreName()) ?? "unknown" : "unknown";

    /// <summary>OpenBLAS's thread count (openblas_set_num_threads / openblas_get_num_threads).</summary>
    public static int Threads
    {
        get => TryLoad() && getThreads != null ? getThreads() : 0;
        set { if (TryLoad() && setThreads != null) setThreads(value); }
    }

    /// <summary>Where the library was found, or null.</summary>
    public static string? LibraryPath { get; private set; }

    /// <summary>Loads the library; false when it is not installed.</summary>
    public static bool TryLoad()
    {
        if (sgemm != null) return true;
        foreach (var path in Candidates)
        {
            if (NativeLibrary.TryLoad(path, out var handle) && NativeLibrary.TryGetExport(handle, "cblas_sgemm", out var f))
            {
                sgemm = (delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void>)f;
                if (NativeLibrary.TryGetExport(handle, "openblas_set_num_threads", out var st)) setThreads = (delegate* unmanaged<int, void>)st;
                if (NativeLibrary.TryGetExport(handle, "openblas_get_num_threads", out var gt)) getThreads = (delegate* unmanaged<int>)gt;
                if (NativeLibrary.TryGetExport(handle, "openblas_get_corename", out var cn)) coreName = (delegate* unmanaged<byte*>)cn;
                LibraryPath = path;
                return true;
            }
        }
        return false;
    }

    /// <summary>C[m×n] = op(A)·op(B), row-major, leading dimensions of the stored matrices.</summary>
    public static void Sgemm(bool transA, bool transB, int m, int n, int k, float[] a, int lda, float[] b, int ldb, float[] c, int ldc)
    {
        fixed (float* pa = a) fixed (float* pb = b) fixed (float* pc = c)
            sgemm(RowMajor, transA ? Trans : NoTrans, transB ? Trans : NoTrans, m, n, k, 1f, pa, lda, pb, ldb, 0f, pc, ldc);
    }

    /// <summary>
    /// Waits, untimed, for OpenBLAS's worker threads to stop spinning: after a call they busy-wait about 2²⁸ cycles
    /// (its THREAD_TIMEOUT, about 0.1 s here) before sleeping, and would take the cores from whatever runs next.
    /// </summary>
    public static void LetThreadsSleep()
    {
        if (Threads > 1) Thread.Sleep(150);
    }

    /// <summary>
    /// SGEMM timed by perf/openblas/sgemm.c in a process of its own (built here with gcc, against the same library
    /// file, in this baseline's environment): the kernel it ran and the median GFLOP/s per size.
    /// </summary>
    public static (string Core, (int N, double GflopsPerSecond)[] Rates) Standalone(int threads, int repeats, int[] sizes)
    {
        if (!TryLoad()) throw new InvalidOperationException("OpenBLAS is not installed (perf/torch/install.sh installs it).");
        var source = FindRepositoryFile(Path.Combine("perf", "openblas", "sgemm.c"))
            ?? throw new FileNotFoundException("perf/openblas/sgemm.c not found above the working directory or the Bench's folder.");
        var exe = Path.Combine(Path.GetTempPath(), $"curvature-sgemm-{File.GetLastWriteTimeUtc(source).Ticks:x}");
        if (!File.Exists(exe))
            RunToEnd(new ProcessStartInfo("gcc", ["-O2", "-o", exe, source, LibraryPath!]), "gcc (apt-get install gcc)");
        var info = new ProcessStartInfo(exe, [threads.ToString(System.Globalization.CultureInfo.InvariantCulture), repeats.ToString(System.Globalization.CultureInfo.InvariantCulture),
            .. sizes.Select(n => n.ToString(System.Globalization.CultureInfo.InvariantCulture))]);
        ApplyTo(info);
        var lines = RunToEnd(info, exe).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        string core = lines[0].Split(' ')[1];
        var rates = lines.Skip(1).Select(l => l.Split(' ')).Select(w => (int.Parse(w[1], System.Globalization.CultureInfo.InvariantCulture), double.Parse(w[2], System.Globalization.CultureInfo.InvariantCulture))).ToArray();
        return (core, rates);
    }

    private static string RunToEnd(ProcessStartInfo info, string what)
    {
        info.RedirectStandardOutput = true;
        info.RedirectStandardError = true;
        info.UseShellExecute = false;
        Process child;
        try { child = Process.Start(info)!; }
        catch (System.ComponentModel.Win32Exception e) { throw new InvalidOperationException($"could not start {what}: {e.Message}"); }
        using (child)
        {
            var stdout = child.StandardOutput.ReadToEndAsync();
            var stderr = child.StandardError.ReadToEnd();
            child.WaitForExit();
            if (child.ExitCode != 0) throw new InvalidOperationException($"{what} failed (exit {child.ExitCode}): {stderr.Trim()}");
            return stdout.Result;
        }
    }

    /// <summary>A file of the repository, found by walking up from the working directory, then from the Bench's folder.</summary>
    internal static string? FindRepositoryFile(string relative)
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, relative))) return Path.Combine(dir.FullName, relative);
        return null;
    }
}
