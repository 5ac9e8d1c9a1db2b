namespace Curvature.Tests;

/// <summary>
/// Folders the tests write into: each a fresh subfolder of one root per test run, and the root deleted when the run's
/// process exits, so a run leaves nothing behind in the system's temporary folder.
/// </summary>
public static class Scratch
{
    private static readonly Lazy<string> root = new(() =>
    {
        string dir = Directory.CreateTempSubdirectory("curvature-tests-").FullName;
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { Directory.Delete(dir, recursive: true); }
            catch (IOException) { } // a file still open at exit: the folder stays, nothing fails
            catch (UnauthorizedAccessException) { }
        };
        return dir;
    });

    /// <summary>A new empty folder whose name starts with <paramref name="prefix"/>.</summary>
    public static string NewDirectory(string prefix = "") =>
        Directory.CreateDirectory(Path.Combine(root.Value, prefix + Guid.NewGuid().ToString("N")[..8])).FullName;
}
