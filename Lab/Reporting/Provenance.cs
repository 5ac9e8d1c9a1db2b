using System.Diagnostics;
using Curvature.Kernels;

namespace Curvature.Lab.Reporting;

/// <summary>Where and with what a report's figures were measured: the machine, the threads, the device and the engine's commit.</summary>
public static class Provenance
{
    /// <summary>One sentence: "Measured on AMD EPYC … (2 cores), 2 threads, cpu; engine commit 1a2b3c4."</summary>
    public static string Describe(Engine.Device device) =>
        $"Measured on {Processor()} ({Environment.ProcessorCount} cores), {Parallelism.MaxThreads} threads, device {device.Name}; engine commit {Commit()}.";

    /// <summary>The processor's model name (Linux: /proc/cpuinfo), else the architecture.</summary>
    public static string Processor()
    {
        try
        {
            if (File.Exists("/proc/cpuinfo"))
                foreach (var line in File.ReadLines("/proc/cpuinfo"))
                    if (line.StartsWith("model name", StringComparison.Ordinal) && line.IndexOf(':') is var colon and > 0)
                        return line[(colon + 1)..].Trim();
        }
        catch (IOException) { }
        return System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture.ToString();
    }

    /// <summary>The short commit of the repository the program was built from, with "-dirty" for uncommitted changes; "unknown" without git.</summary>
    public static string Commit()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (!File.Exists(Path.Combine(dir.FullName, "Engine.sln"))) continue;
            string? sha = Git(dir.FullName, "rev-parse --short HEAD");
            if (sha is null) return "unknown";
            string? status = Git(dir.FullName, "status --porcelain --untracked-files=no");
            return status is { Length: > 0 } ? sha + "-dirty" : sha;
        }
        return "unknown";
    }

    private static string? Git(string folder, string arguments)
    {
        try
        {
            var info = new ProcessStartInfo("git", $"-C \"{folder}\" {arguments}") { RedirectStandardOutput = true, RedirectStandardError = true };
            using var p = Process.Start(info);
            if (p is null) return null;
            string text = p.StandardOutput.ReadToEnd().Trim();
            p.WaitForExit();
            return p.ExitCode == 0 ? text : null;
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException) { return null; }
    }
}
