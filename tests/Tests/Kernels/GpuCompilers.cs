using System.Reflection;
using Curvature.Engine;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.OpenCL;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using ILGPU.Runtime.OpenCL;

namespace Curvature.Tests.Kernels;

/// <summary>
/// Compiles GPU kernels with ILGPU's CUDA and OpenCL backends and the engine's own compiler configuration
/// (<see cref="DeviceCatalog.Compiler"/>): PTX for an H100 (sm_90), OpenCL C 2.0 for an NVIDIA device. Neither
/// backend needs a GPU or a driver, so CI checks what such a device would be given: that every kernel compiles
/// at all, and what its code looks like.
/// </summary>
public static class GpuCompilers
{
    private static readonly Lock Gate = new();
    private static readonly Lazy<Context> Context = new(() => ILGPU.Context.Create(b => DeviceCatalog.Compiler(b.Cuda().OpenCL())));
    private static readonly Lazy<PTXBackend> Cuda = new(() =>
        new PTXBackend(Context.Value, new CudaCapabilityContext(CudaArchitecture.SM_90), CudaArchitecture.SM_90, CudaInstructionSet.ISA_80, null));
    private static readonly Lazy<CLBackend> OpenClBackend = new(() =>
        new CLBackend(Context.Value, new CLCapabilityContext(true, true, true, true, true), CLDeviceVendor.Nvidia, CLCVersion.CL20));

    /// <summary>The PTX of an explicitly grouped kernel (a closed generic method).</summary>
    public static string Ptx(MethodInfo kernel)
    {
        lock (Gate)
            return ((PTXCompiledKernel)Cuda.Value.Compile(EntryPointDescription.FromExplicitlyGroupedKernel(kernel), KernelSpecialization.Empty)).PTXAssembly;
    }

    /// <summary>The OpenCL C source of an explicitly grouped kernel.</summary>
    public static string OpenCl(MethodInfo kernel)
    {
        lock (Gate)
            return ((CLCompiledKernel)OpenClBackend.Value.Compile(EntryPointDescription.FromExplicitlyGroupedKernel(kernel), KernelSpecialization.Empty)).Source;
    }

    /// <summary>How many times <paramref name="what"/> occurs in <paramref name="text"/>.</summary>
    public static int Count(string text, string what)
    {
        int n = 0;
        for (int at = text.IndexOf(what, StringComparison.Ordinal); at >= 0; at = text.IndexOf(what, at + what.Length, StringComparison.Ordinal)) n++;
        return n;
    }
}
