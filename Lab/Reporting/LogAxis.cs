using System.Globalization;
using ScottPlot;

namespace Curvature.Lab.Reporting;

/// <summary>
/// One definition of the Lab's log-scale loss axes: series are plotted as log₁₀ of their values (a non-positive
/// value has no place there and becomes a gap), and the axis is labeled in the values themselves with log-spaced
/// minor ticks, so a reader sees 0.01, not −2.
/// </summary>
internal static class LogAxis
{
    /// <summary>log₁₀ <paramref name="value"/>, or NaN (a gap) when it is not positive.</summary>
    public static double Of(double value) => value > 0 ? Math.Log10(value) : double.NaN;

    /// <summary>Labels <paramref name="plot"/>'s left axis in the values of its log₁₀ series.</summary>
    public static void Label(Plot plot) => plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic
    {
        LabelFormatter = v => Math.Pow(10, v).ToString("G3", CultureInfo.InvariantCulture),
        MinorTickGenerator = new ScottPlot.TickGenerators.LogMinorTickGenerator(),
    };
}
