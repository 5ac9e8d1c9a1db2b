namespace Curvature.Tests.Engine;

/// <summary>
/// Runs the device conformance suite (<see cref="DeviceConformanceTests"/>, in tests/Conformance so that perf/Gpu can
/// run the same checks on a GPU machine without an SDK) as this test assembly's tests: xunit discovers test methods
/// in the test assembly only, inherited ones included.
/// </summary>
[Collection("ilgpu cpu accelerator")]
public sealed class DeviceConformance : DeviceConformanceTests;
