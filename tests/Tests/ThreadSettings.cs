namespace Curvature.Tests;

/// <summary>Tests that change the global thread count run one at a time in this collection.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public class ThreadSettings
{
    public const string Name = "thread settings";
}
