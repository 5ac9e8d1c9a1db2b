using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace Curvature.Training;

/// <summary>
/// A run's output folder, held for the length of the run: an advisory lock file (<c>.lock</c>, holding the
/// owner's process id and start time) refuses a second run into the same folder while the first lives; a fresh
/// run into a folder holding another run's files is refused unless it resumes or overwrites; temporary files of
/// <see cref="Models.AtomicFile"/>'s naming left by a killed process are removed.
/// </summary>
public sealed partial class RunFolder : IDisposable
{
    /// <summary>The lock file's name.</summary>
    public const string LockName = ".lock";

    /// <summary>The files that make a folder hold a run (any of them, at the top or in a run's subfolder).</summary>
    public static readonly string[] RunFiles = ["checkpoint.safetensors", "steps.csv", "summary.json", "report.md"];

    private readonly string lockPath;
    private readonly string stamp;
    private readonly bool created;

    /// <summary>The folder.</summary>
    public string Path { get; }

    private RunFolder(string path, string lockPath, string stamp, bool created)
    {
        this.created = created;
        Path = path;
        this.lockPath = lockPath;
        this.stamp = stamp;
    }

    /// <summary>
    /// <see cref="Open(string, bool, bool, bool)"/> for a run over <paramref name="ranks"/>: rank 0 opens and locks the
    /// folder, every rank returns once it has (null on the others, which write nothing there).
    /// </summary>
    public static RunFolder? Open(Distributed.ICommunicator ranks, string path, bool resume = false, bool overwrite = false, bool checkExisting = true)
    {
        // Rank 0 owns the folder (its lock, its files); the others wait until it holds it, then may read it to resume.
        var folder = ranks.Rank == 0 ? Open(path, resume, overwrite, checkExisting) : null;
        ranks.Barrier();
        return folder;
    }

    /// <summary>
    /// Creates (if need be) and locks <paramref name="path"/>. Unless <paramref name="resume"/> or
    /// <paramref name="overwrite"/>, a folder holding another run's files is refused, naming them;
    /// <paramref name="overwrite"/> deletes the checkpoints and logs of that run (so nothing of it can be resumed
    /// or stitched). <paramref name="checkExisting"/> false skips that test (a verb whose reruns simply replace
    /// their results). Errors are <see cref="TrainingException"/>s naming the folder.
    /// </summary>
    public static RunFolder Open(string path, bool resume = false, bool overwrite = false, bool checkExisting = true)
    {
        if (File.Exists(path)) throw new TrainingException($"--out {path} is a file; expected a folder (it is created when missing).");
        bool created = !Directory.Exists(path);
        try { Directory.CreateDirectory(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new TrainingException($"--out {path}: cannot create the folder ({e.Message}).");
        }
        string lockPath = System.IO.Path.Combine(path, LockName);
        using var me = Process.GetCurrentProcess();
        string stamp = $"{Environment.ProcessId} {me.StartTime.ToUniversalTime().Ticks.ToString(CultureInfo.InvariantCulture)}";
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                using var fs = new FileStream(lockPath, FileMode.CreateNew, FileAccess.Write, FileShare.None);
                fs.Write(System.Text.Encoding.ASCII.GetBytes(stamp + "\n"));
                break;
            }
            catch (UnauthorizedAccessException e)
            {
                throw new TrainingException($"--out {path} is not writable ({e.Message}).");
            }
            catch (IOException) when (File.Exists(lockPath) && attempt < 3)
            {
                string held = "";
                try { held = File.ReadAllText(lockPath).Trim(); } catch (IOException) { continue; }
                if (Alive(held) is { } pid)
                    throw new TrainingException($"--out {path} is in use by process {pid} ({lockPath}); wait for it to finish, or use another --out.");
                // A lock left by a process that is gone (killed): take it over.
                try { File.Delete(lockPath); } catch (IOException) { }
            }
            catch (IOException e)
            {
                throw new TrainingException($"--out {path}: cannot write the lock file {lockPath} ({e.Message}).");
            }
        }
        var folder = new RunFolder(path, lockPath, stamp, created);
        try
        {
            RemoveOrphans(path);
            var existing = Existing(path);
            if (existing.Count > 0 && !resume)
            {
                if (overwrite) foreach (var f in existing) File.Delete(f);
                else if (checkExisting)
                    throw new TrainingException($"--out {path} holds another run's files ({string.Join(", ", existing.Take(4).Select(f => System.IO.Path.GetRelativePath(path, f)))}" +
                                                $"{(existing.Count > 4 ? $" and {existing.Count - 4} more" : "")}); continue it with --resume, replace it with --overwrite, or use another --out.");
            }
        }
        catch
        {
            folder.Dispose();
            throw;
        }
        return folder;
    }

    /// <summary>Releases the lock (only if it is still this process's); a folder this run created and left empty (it failed before writing) is removed.</summary>
    public void Dispose()
    {
        try
        {
            if (File.Exists(lockPath) && File.ReadAllText(lockPath).Trim() == stamp) File.Delete(lockPath);
            if (created && Directory.Exists(Path) && !Directory.EnumerateFileSystemEntries(Path).Any()) Directory.Delete(Path);
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    /// <summary>The run files in the folder and its subfolders (at most three levels down).</summary>
    private static List<string> Existing(string path)
    {
        var found = new List<string>();
        void Walk(string dir, int depth)
        {
            foreach (var name in RunFiles)
                if (File.Exists(System.IO.Path.Combine(dir, name))) found.Add(System.IO.Path.Combine(dir, name));
            if (depth < 3)
                foreach (var sub in Directory.EnumerateDirectories(dir).Order(StringComparer.Ordinal)) Walk(sub, depth + 1);
        }
        Walk(path, 0);
        return found;
    }

    /// <summary>Deletes AtomicFile temporaries (<c>.name.PID.GUID.tmp</c>) whose writer is no longer running, here and in subfolders.</summary>
    private static void RemoveOrphans(string path)
    {
        foreach (var file in Directory.EnumerateFiles(path, ".*.tmp", new EnumerationOptions { RecurseSubdirectories = true, MaxRecursionDepth = 3, AttributesToSkip = 0 }))
        {
            var m = TempName().Match(System.IO.Path.GetFileName(file));
            if (!m.Success || !int.TryParse(m.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out int pid)) continue;
            if (pid != Environment.ProcessId && Running(pid)) continue;
            try { File.Delete(file); } catch (IOException) { }
        }
    }

    /// <summary>The pid in a lock stamp when that process (same start time) still runs; else null.</summary>
    private static int? Alive(string stamp)
    {
        var parts = stamp.Split(' ');
        if (parts.Length != 2 || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int pid)
            || !long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out long ticks)) return null;
        try
        {
            using var p = Process.GetProcessById(pid);
            // Start times are derived from the boot time as each process computes it, which jitters by microseconds: a second's tolerance.
            return !p.HasExited && Math.Abs(p.StartTime.ToUniversalTime().Ticks - ticks) < TimeSpan.TicksPerSecond ? pid : null;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception) { return null; }
    }

    private static bool Running(int pid)
    {
        try { using var p = Process.GetProcessById(pid); return !p.HasExited; }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException) { return false; }
    }

    [GeneratedRegex(@"^\..+\.(\d+)\.[0-9a-f]{32}\.tmp$")]
    private static partial Regex TempName();
}
