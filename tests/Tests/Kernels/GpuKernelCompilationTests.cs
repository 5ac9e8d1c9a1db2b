using System.Reflection;
using Curvature.Kernels.Gpu;
using ILGPU;
using Curvature.Kernels;

namespace Curvature.Tests.Kernels;

/// <summary>
/// Every kernel of the GPU layer, in every instantiation the engine can launch, compiled for CUDA. ILGPU's CPU
/// accelerator, which runs the conformance suite, calls .NET's own math; a CUDA device gets ILGPU's PTX, which
/// has no exp, log, tanh or pow of its own (until the kernels took them from ScalarMath, every kernel that called
/// one failed to compile for CUDA) and whose float32 defaults elsewhere are approximate instructions.
/// </summary>
public class GpuKernelCompilationTests
{
    private static readonly Type[] Elements = [typeof(float), typeof(double), typeof(long)];

    private static readonly Type[] Policies =
        [typeof(Float32Kind), typeof(Float64Kind), typeof(Int64Kind), typeof(GpuLargeTile), typeof(GpuSmallTile), typeof(GpuThin16Tile), typeof(GpuThin32Tile), typeof(CpuLargeTile), typeof(CpuSmallTile)];

    /// <summary>The kernels: public static void methods of the layer's static classes that take an ArrayView.</summary>
    private static IEnumerable<MethodInfo> KernelDefinitions() =>
        typeof(Gemm).Assembly.GetTypes()
            .Where(t => t.Namespace == typeof(Gemm).Namespace && t.IsAbstract && t.IsSealed && t.IsPublic)
            .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.Static))
            .Where(m => m.ReturnType == typeof(void) && m.GetParameters().Any(p => p.ParameterType.IsGenericType && p.ParameterType.GetGenericTypeDefinition() == typeof(ArrayView<>)));

    /// <summary>Every instantiation whose constraints hold: element types for plain type parameters, kinds and tilings
    /// for those constrained to a policy interface.</summary>
    private static IEnumerable<MethodInfo> Instantiations(MethodInfo definition)
    {
        if (!definition.IsGenericMethodDefinition) { yield return definition; yield break; }
        var parameters = definition.GetGenericArguments();
        var choices = parameters.Select(p => p.GetGenericParameterConstraints().Any(c => c.Namespace is { } ns && ns.StartsWith("Curvature.Kernels", StringComparison.Ordinal))
            ? Policies : Elements).ToArray();
        IEnumerable<Type[]> combos = [[]];
        foreach (var c in choices) combos = combos.SelectMany(prefix => c.Select(t => prefix.Append(t).ToArray()));
        foreach (var combo in combos)
        {
            MethodInfo? m = null;
            try { m = definition.MakeGenericMethod(combo); }
            catch (ArgumentException) { } // a constraint does not hold
            if (m != null) yield return m;
        }
    }

    [Fact]
    public void Every_gpu_kernel_compiles_for_cuda_without_local_memory_or_approximate_math()
    {
        var (compiled, problems) = CompileAll(GpuCompilers.Ptx, (name, ptx) =>
            (ptx.Contains(".local", StringComparison.Ordinal) ? [$"{name}: uses local memory"] : Array.Empty<string>())
            .Concat(ptx.Contains(".approx", StringComparison.Ordinal) ? [$"{name}: uses an approximate instruction"] : []));
        Assert.True(problems.Count == 0, $"{problems.Count} problems in {compiled} compiled kernels:\n" + string.Join("\n", problems));
    }

    [Fact]
    public void Every_gpu_kernel_translates_to_opencl_c()
    {
        var (compiled, problems) = CompileAll(GpuCompilers.OpenCl, (name, source) =>
            source.Contains("kernel void Kernel_", StringComparison.Ordinal) ? [] : [$"{name}: no kernel entry point in the OpenCL source"]);
        Assert.True(problems.Count == 0, $"{problems.Count} problems in {compiled} translated kernels:\n" + string.Join("\n", problems));
    }

    /// <summary>Compiles every instantiation of every kernel; <paramref name="inspect"/> names what is wrong with one's code.</summary>
    private static (int Compiled, List<string> Problems) CompileAll(Func<MethodInfo, string> compile, Func<string, string, IEnumerable<string>> inspect)
    {
        var definitions = KernelDefinitions().ToList();
        Assert.True(definitions.Count >= 30, $"found only {definitions.Count} kernels: the discovery rule no longer matches the layer");
        var problems = new List<string>();
        int compiled = 0;
        foreach (var definition in definitions)
        {
            var instances = Instantiations(definition).ToList();
            if (instances.Count == 0) problems.Add($"{definition.DeclaringType!.Name}.{definition.Name}: no instantiation satisfies its constraints");
            foreach (var kernel in instances)
            {
                string name = $"{kernel.DeclaringType!.Name}.{kernel.Name}<{string.Join(", ", kernel.GetGenericArguments().Select(t => t.Name))}>";
                string code;
                try { code = compile(kernel); compiled++; }
                catch (Exception e) { problems.Add($"{name}: {e.InnerException?.InnerException?.Message ?? e.InnerException?.Message ?? e.Message}"); continue; }
                problems.AddRange(inspect(name, code));
            }
        }
        return (compiled, problems);
    }
}
