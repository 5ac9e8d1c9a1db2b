using System.Reflection;
using Curvature.Engine;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace Curvature.Tests.Kernels;

/// <summary>
/// Compiles GPU kernels to PTX for an H100 (sm_90) with the engine's own compiler configuration
/// (<see cref="DeviceCatalog.Compiler"/>). ILGPU's PTX backend needs no GPU and no driver, so CI checks what the
/// CUDA device would be given: that every kernel compiles at all, and what its code looks like.
/// </summary>
public static class Ptx
{
    private static readonly Lock Gate = new();
    private static readonly Lazy<(Context Context, PTXBackend Backend)> Compiler = new(() =>
    {
        var context = Context.Create(b => DeviceCatalog.Compiler(b.Cuda()));
        return (context, new PTXBackend(context, new CudaCapabilityContext(CudaArchitecture.SM_90), CudaArchitecture.SM_90, CudaInstructionSet.ISA_80, null));
    });

    /// <summary>The PTX of an explicitly grouped kernel (a closed generic method).</summary>
    public static string Of(MethodInfo kernel)
    {
        lock (Gate)
        {
            var compiled = (PTXCompiledKernel)Compiler.Value.Backend.Compile(EntryPointDescription.FromExplicitlyGroupedKernel(kernel), KernelSpecialization.Empty);
            return compiled.PTXAssembly;
        }
    }

    /// <summary>How many times <paramref name="what"/> occurs in <paramref name="text"/>.</summary>
    public static int Count(string text, string what)
    {
        int n = 0;
        for (int at = text.IndexOf(what, StringComparison.Ordinal); at >= 0; at = text.IndexOf(what, at + what.Length, StringComparison.Ordinal)) n++;
        return n;
    }
}
