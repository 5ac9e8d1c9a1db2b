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

    /// <summary>Where the library was found, or null.</summary>
    public static string? Path { get; private set; }

    /// <summary>Loads the library; false when it is not installed.</summary>
    public static bool TryLoad()
    {
        if (sgemm != null) return true;
        foreach (var path in Candidates)
        {
            if (NativeLibrary.TryLoad(path, out var handle) && NativeLibrary.TryGetExport(handle, "cblas_sgemm", out var f))
            {
                sgemm = (delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void>)f;
                Path = path;
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
}
