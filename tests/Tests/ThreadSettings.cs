namespace Curvature.Tests;

/// <summary>Tests that change the global thread count run one at a time in this collection.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public class ThreadSettings
{
    public const string Name = "thread settings";
}

/// <summary>
/// Tests that run kernels on ILGPU's CPU accelerator run one class at a time: each accelerator spins a thread per
/// core at its barriers, so two at once on two cores (or three) wait on one another for minutes instead of seconds.
/// </summary>
[CollectionDefinition(Name)]
public class CpuAccelerator
{
    public const string Name = "ilgpu cpu accelerator";
}
