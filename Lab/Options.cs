using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;

namespace Curvature.Lab;

/// <summary>
/// Option builders shared by the verbs. Every number is parsed here, culture-invariantly and with its range,
/// inside System.CommandLine's own error path: a bad value is one line naming the option, what was given and what
/// is expected, and exit code 2 before any work.
/// </summary>
internal static class Options
{
    /// <summary>The most steps (or other counts that size per-step arrays) a run may ask for.</summary>
    public const int MaxSteps = 10_000_000;

    /// <summary>An integer option in [<paramref name="min"/>, <paramref name="max"/>].</summary>
    public static Option<int> Int(string name, string description, int defaultValue, int min = 1, int max = int.MaxValue) =>
        new(name) { Description = description, DefaultValueFactory = _ => defaultValue, CustomParser = r => r.Tokens.Count == 0 ? defaultValue : ParseInt(r, name, min, max) ?? 0 };

    /// <summary>An integer option in [<paramref name="min"/>, <paramref name="max"/>] that may be absent (null).</summary>
    public static Option<int?> OptionalInt(string name, string description, int min = 1, int max = int.MaxValue) =>
        new(name) { Description = description, CustomParser = r => r.Tokens.Count == 0 ? null : ParseInt(r, name, min, max) };

    /// <summary>A seed: any integer from 0 to 2⁶⁴ − 1.</summary>
    public static Option<ulong> Seed(string name, string description) => new(name)
    {
        Description = description,
        DefaultValueFactory = _ => 0UL,
        CustomParser = r =>
        {
            if (r.Tokens.Count == 0) return 0;
            string t = Token(r);
            if (ulong.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out ulong v)) return v;
            r.AddError($"{name}: '{t}' is not a seed; expected an integer from 0 to {ulong.MaxValue}.");
            return 0;
        },
    };

    /// <summary>
    /// A finite number in the range given (<paramref name="min"/> excluded when <paramref name="minExclusive"/>,
    /// <paramref name="max"/> excluded when <paramref name="maxExclusive"/>).
    /// </summary>
    public static Option<double> Number(string name, string description, double defaultValue, double min = double.NegativeInfinity, double max = double.PositiveInfinity,
        bool minExclusive = false, bool maxExclusive = false) =>
        new(name) { Description = description, DefaultValueFactory = _ => defaultValue, CustomParser = r => r.Tokens.Count == 0 ? defaultValue : ParseNumber(r, name, min, max, minExclusive, maxExclusive) ?? 0 };

    /// <summary>A finite number in the range given, or absent (null).</summary>
    public static Option<double?> OptionalNumber(string name, string description, double min = double.NegativeInfinity, double max = double.PositiveInfinity,
        bool minExclusive = false, bool maxExclusive = false) =>
        new(name) { Description = description, CustomParser = r => r.Tokens.Count == 0 ? null : ParseNumber(r, name, min, max, minExclusive, maxExclusive) };

    /// <summary>A positive finite number, or absent (null).</summary>
    public static Option<double?> OptionalPositive(string name, string description) => OptionalNumber(name, description, 0, minExclusive: true);

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

    /// <summary>
    /// Adds a validator of several options together. It runs only when every option parsed: one that did not has
    /// its own error already, and reading its value would throw.
    /// </summary>
    public static void Validate(Command command, Action<CommandResult> check) => command.Validators.Add(r =>
    {
        try { check(r); }
        catch (InvalidOperationException) { /* an option's value could not be converted; its error is reported */ }
    });

    /// <summary>
    /// An option's value inside a command validator: the parsed value, or its default when the option was not
    /// given (at validation time an absent option has no result yet, and System.CommandLine would return default(T)).
    /// </summary>
    public static T? ValueOf<T>(this CommandResult r, Option<T> option) =>
        r.GetResult(option) is null && option.DefaultValueFactory is { } f ? f(null!) : r.GetValue(option);

    private static string Token(ArgumentResult r) => r.Tokens.Count > 0 ? r.Tokens[^1].Value : "";

    private static int? ParseInt(ArgumentResult r, string name, int min, int max)
    {
        string t = Token(r);
        string range = max == int.MaxValue ? $"at least {min}" : $"from {min} to {max}";
        if (long.TryParse(t, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long v) || BigDigits(t))
        {
            if (v >= min && v <= max && !BigDigits(t)) return (int)v;
            r.AddError($"{name}: {t} is out of range; expected an integer {range}.");
            return null;
        }
        r.AddError($"{name}: '{t}' is not an integer; expected an integer {range}.");
        return null;
    }

    // An integer too long for a long is still an integer, only out of range.
    private static bool BigDigits(string t) => t.Length > 18 && t.TrimStart('-', '+').All(char.IsAsciiDigit);

    private static double? ParseNumber(ArgumentResult r, string name, double min, double max, bool minExclusive, bool maxExclusive)
    {
        string t = Token(r);
        string lower = double.IsNegativeInfinity(min) ? "" : minExclusive ? $"above {F(min)}" : $"at least {F(min)}";
        string upper = double.IsPositiveInfinity(max) ? "" : maxExclusive ? $"below {F(max)}" : $"at most {F(max)}";
        string expected = "a finite number" + (lower.Length + upper.Length == 0 ? "" : " " + string.Join(" and ", new[] { lower, upper }.Where(s => s.Length > 0)));
        if (!double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out double v))
        {
            string hint = t.Contains(',') ? " (decimals take a point: 1.5, not 1,5)" : "";
            r.AddError($"{name}: '{t}' is not a number{hint}; expected {expected}.");
            return null;
        }
        if (!double.IsFinite(v) || v < min || v > max || (minExclusive && v == min) || (maxExclusive && v == max))
        {
            r.AddError($"{name}: {t} is out of range; expected {expected}.");
            return null;
        }
        return v;
    }

    private static string F(double v) => v.ToString("G", CultureInfo.InvariantCulture);
}
