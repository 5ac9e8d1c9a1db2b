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
        LabelFormatter = v => Text(Math.Pow(10, v)),
        MinorTickGenerator = new ScottPlot.TickGenerators.LogMinorTickGenerator(),
    };

    /// <summary>A tick's value to three significant digits, in plain digits from 0.001 to 10⁶ (G3 alone writes 1000 as 1E+03).</summary>
    internal static string Text(double value)
    {
        if (value < 1000 || value >= 1e6) return value.ToString("G3", CultureInfo.InvariantCulture);
        double unit = Math.Pow(10, Math.Floor(Math.Log10(value)) - 2);
        return (Math.Round(value / unit) * unit).ToString("0", CultureInfo.InvariantCulture);
    }
}
