using System.CommandLine;
using System.Globalization;

namespace Curvature.Lab;

/// <summary>Option builders shared by the verbs, with validation at parse time (bad values exit with code 2).</summary>
internal static class Options
{
    /// <summary>An integer option that must be at least <paramref name="min"/>.</summary>
    public static Option<int> Int(string name, string description, int defaultValue, int min = 1)
    {
        var o = new Option<int>(name) { Description = description, DefaultValueFactory = _ => defaultValue };
        o.Validators.Add(r =>
        {
            int v = r.GetValueOrDefault<int>();
            if (v < min) r.AddError($"{name} must be at least {min}, got {v}.");
        });
        return o;
    }

    /// <summary>A comma-separated list of positive numbers (e.g. <c>--lrs 0.02,0.04</c>).</summary>
    public static Option<double[]> PositiveList(string name, string description, double[] defaultValue)
    {
        return new Option<double[]>(name)
        {
            Description = description,
            DefaultValueFactory = _ => defaultValue,
            CustomParser = r =>
            {
                var parts = r.Tokens.SelectMany(t => t.Value.Split(',', StringSplitOptions.RemoveEmptyEntries)).ToArray();
                var values = new List<double>();
                foreach (var p in parts)
                {
                    if (!double.TryParse(p, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) || !(v > 0) || double.IsInfinity(v))
                    {
                        r.AddError($"{name}: '{p}' is not a positive number; expected a comma-separated list such as 0.02,0.04.");
                        return [];
                    }
                    values.Add(v);
                }
                if (values.Count == 0) r.AddError($"{name}: expected at least one value.");
                return values.ToArray();
            },
        };
    }

    /// <summary>The folder holding the Fashion-MNIST IDX gz files (default: where Debian's package puts them).</summary>
    public static Option<string> FashionMnistFolder() => new("--data")
    {
        Description = "Folder with the Fashion-MNIST IDX gz files",
        DefaultValueFactory = _ => Curvature.Models.Data.FashionMnist.DefaultFolder,
    };

    /// <summary>A string option restricted to a set of values.</summary>
    public static Option<string> OneOf(string name, string description, string defaultValue, params string[] allowed)
    {
        var o = new Option<string>(name) { Description = description, DefaultValueFactory = _ => defaultValue };
        o.AcceptOnlyFromAmong(allowed);
        return o;
    }
}
