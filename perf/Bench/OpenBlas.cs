using System.Runtime.InteropServices;

namespace Curvature.Bench;

/// <summary>
/// OpenBLAS's cblas_sgemm through P/Invoke: the baseline timed in the same run as our kernels. Debian's
/// libopenblas0-pthread installs it as an alternative of libblas.so.3; we load its own file by path.
/// </summary>
internal static unsafe class OpenBlas
{
    private const int RowMajor = 101, NoTrans = 111;
    private static readonly string[] Candidates =
    [
        "/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3",
        "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0",
        "libopenblas.so.0",
    ];


    private static delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void> fn;

    /// <summary>Loads the library; returns false (and why) when it is not installed.</summary>
    public static bool TryLoad(out string why)
    {
        foreach (var path in Candidates)
        {
            if (NativeLibrary.TryLoad(path, out var handle) && NativeLibrary.TryGetExport(handle, "cblas_sgemm", out var f))
            {
                fn = (delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void>)f;
                why = path;
                return true;
            }
        }
        why = "OpenBLAS not found (apt-get install libopenblas0-pthread)";
        return false;
    }

    /// <summary>C[m×n] = A[m×k]·B[k×n], row-major.</summary>
    public static void Sgemm(int m, int n, int k, float[] a, float[] b, float[] c)
    {
        fixed (float* pa = a) fixed (float* pb = b) fixed (float* pc = c)
            fn(RowMajor, NoTrans, NoTrans, m, n, k, 1f, pa, k, pb, n, 0f, pc, n);
    }
}
