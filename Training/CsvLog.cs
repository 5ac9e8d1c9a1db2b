using System.Globalization;
using System.Text;
using Curvature.Models;

namespace Curvature.Training;

/// <summary>A table of rows with fixed columns, written as CSV atomically (the file is complete or absent).</summary>
public sealed class CsvLog(params string[] columns)
{
    private readonly List<string[]> rows = [];

    /// <summary>The column names.</summary>
    public IReadOnlyList<string> Columns => columns;

    /// <summary>The rows as written (formatted fields).</summary>
    public IReadOnlyList<string[]> Rows => rows;

    /// <summary>Rows so far.</summary>
    public int Count => rows.Count;

    /// <summary>Adds a row; null is written as an empty field, numbers in invariant round-trip form.</summary>
    public void Add(params object?[] values)
    {
        if (values.Length != columns.Length) throw new ArgumentException($"csv: {values.Length} values for {columns.Length} columns.");
        rows.Add(values.Select(Format).ToArray());
    }

    /// <summary>Adds a row of fields already formatted (read back from a log being resumed).</summary>
    public void AddFields(string[] fields)
    {
        if (fields.Length != columns.Length) throw new ArgumentException($"csv: {fields.Length} fields for {columns.Length} columns.");
        rows.Add(fields);
    }

    private static string Format(object? v) => v switch
    {
        null => "",
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        float f => f.ToString("R", CultureInfo.InvariantCulture),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => v.ToString() ?? "",
    };

    /// <summary>The CSV text: a header line, then one line per row.</summary>
    public string ToCsv()
    {
        var sb = new StringBuilder();
        sb.AppendLine(string.Join(',', columns));
        foreach (var r in rows) sb.AppendLine(string.Join(',', r));
        return sb.ToString();
    }

    /// <summary>Writes the file atomically.</summary>
    public void Write(string path) => AtomicFile.WriteAllText(path, ToCsv());
}
