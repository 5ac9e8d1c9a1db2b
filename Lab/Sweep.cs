using System.CommandLine;
using Curvature.Training;

namespace Curvature.Lab;

/// <summary>
/// <c>Lab sweep</c>: any hyperparameter of any optimizer over a grid, with the report of <c>compare</c>:
/// <c>--optimizer adamw --grid lr=1e-4,3e-4,1e-3</c>; several <c>--grid</c> options sweep their product. The
/// seeds' ablations are presets: <c>--preset caeo-delta</c> (δ ∈ {0.1, 0.5, 1.0}) and <c>--preset caeo-estimator</c>
/// (power iteration, Hutchinson and K-FAC). <c>--delta</c>, <c>--estimator</c>, <c>--alpha</c> and <c>--beta</c> are
/// shorthands for the grid of that key.
/// </summary>
public static class Sweep
{
    /// <summary>Valid presets.</summary>
    public static readonly string[] Presets = ["caeo-delta", "caeo-estimator"];

    /// <summary>One swept key and its values, as parsed and range-checked against the optimizer's hyperparameter.</summary>
    /// <param name="Key">The hyperparameter's key.</param>
    /// <param name="Values">Its values (a choice as its index).</param>
    /// <param name="Texts">The values as given, for labels.</param>
    public sealed record Grid(string Key, double[] Values, string[] Texts);

    /// <summary>Parses <c>key=v1,v2,…</c> for the spec's optimizer; an unknown key or a bad value throws naming it.</summary>
    public static Grid ParseGrid(OptimizerSpec spec, string text)
    {
        int eq = text.IndexOf('=');
        if (eq <= 0) throw new OptimizerSpecException($"--grid '{text}' is not key=v1,v2,…; keys of {spec.Name}: {string.Join(", ", spec.Entry.Parameters.Select(p => p.Key))}.");
        string key = text[..eq].Trim();
        var p = spec.Entry.Find(key) ?? throw new OptimizerSpecException($"--grid: {spec.Name} has no key '{key}'; valid: {string.Join(", ", spec.Entry.Parameters.Select(q => q.Key))}.");
        var texts = text[(eq + 1)..].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (texts.Length == 0) throw new OptimizerSpecException($"--grid {key}: no values given.");
        return new Grid(key, texts.Select(t => p.Parse(spec.Name, t)).ToArray(), texts);
    }

    /// <summary>The grid points: the spec with every combination of the grids' values, labeled <c>key=value[:key=value]</c>.</summary>
    public static IEnumerable<(string Label, OptimizerSpec Spec)> Points(OptimizerSpec spec, IReadOnlyList<Grid> grids)
    {
        IEnumerable<(string Label, OptimizerSpec Spec)> points = [("", spec)];
        foreach (var g in grids)
            points = points.SelectMany(pt => g.Values.Select((v, i) => (pt.Label.Length == 0 ? $"{g.Key}={g.Texts[i]}" : $"{pt.Label}:{g.Key}={g.Texts[i]}", pt.Spec.With(g.Key, v)))).ToArray();
        return points;
    }

    internal static Command Command(TextWriter output0)
    {
        var run = new Compare.RunOptions("out/sweep");
        var optimizer = new Option<string>("--optimizer") { Description = "The optimizer swept, as a spec (name[:key=value]...)", DefaultValueFactory = _ => "caeo" };
        var grid = new Option<string[]>("--grid") { Description = "key=v1,v2,… : a hyperparameter of the optimizer and its values (repeat for a product of grids)", AllowMultipleArgumentsPerToken = false };
        var preset = new Option<string?>("--preset") { Description = $"A named ablation: {string.Join(", ", Presets)}" };
        preset.AcceptOnlyFromAmong(Presets);
        var shorthands = new[] { ("--delta", "delta", "CAEO's δ values (shorthand for --grid delta=…)"), ("--estimator", "estimator", "CAEO's estimators: power,hutchinson,kfac,batch (shorthand for --grid estimator=…)"),
                                 ("--alpha", "alpha", "DCAO's α values (shorthand for --grid alpha=…)"), ("--beta", "beta", "DCAO's β values (shorthand for --grid beta=…)") }
            .Select(t => (Option: new Option<string?>(t.Item1) { Description = t.Item3 }, Key: t.Item2)).ToArray();
        var cmd = new Command("sweep", "One optimizer's hyperparameters over a grid (or a preset ablation), with the compare report");
        cmd.Options.Add(optimizer); cmd.Options.Add(grid); cmd.Options.Add(preset);
        foreach (var (o, _) in shorthands) cmd.Options.Add(o);
        run.AddTo(cmd);

        (OptimizerSpec Spec, List<Grid> Grids, string? Preset) Read(System.CommandLine.Parsing.CommandResult r)
        {
            string? p = r.GetValue(preset);
            var texts = (r.GetValue(grid) ?? []).Concat(shorthands.Where(s => r.GetValue(s.Option) is not null).Select(s => $"{s.Key}={r.GetValue(s.Option)}")).ToArray();
            if (p is not null && texts.Length > 0) throw new OptimizerSpecException("sweep: give a --preset or grids (--grid, --delta, --estimator, --alpha, --beta), not both.");
            if (p is null && texts.Length == 0) throw new OptimizerSpecException("sweep: give a --preset or at least one --grid key=v1,v2,….");
            var spec = OptimizerSpec.Parse(p is null ? r.GetValue(optimizer) ?? "caeo" : "caeo");
            var grids = texts.Select(t => ParseGrid(spec, t)).ToList();
            var twice = grids.GroupBy(g => g.Key).FirstOrDefault(g => g.Count() > 1);
            if (twice is not null) throw new OptimizerSpecException($"sweep: {twice.Key} is swept twice.");
            return (spec, grids, p);
        }
        Options.Validate(cmd, r =>
        {
            try { Read(r); }
            catch (OptimizerSpecException e) { r.AddError(e.Message); }
            catch (InvalidOperationException) { } // an option that failed its own validation; its error is reported already
        });
        cmd.SetAction(r =>
        {
            var output = output0;
            var (device, ranks) = run.Start(r, ref output);
            var (spec, grids, p) = Read(r.CommandResult);
            var defaults = Compare.CurvatureDefaults(r.GetValue(run.ProbeEvery));
            string title;
            switch (p)
            {
                case "caeo-delta":
                    grids = [ParseGrid(spec, "delta=0.1,0.5,1.0")];
                    title = "CAEO ablation over δ";
                    break;
                case "caeo-estimator":
                    grids = [ParseGrid(spec, "estimator=power,hutchinson,kfac,batch")];
                    title = "CAEO ablation over the λmax estimator";
                    break;
                default:
                    title = $"{spec.Text} over {string.Join(" × ", grids.Select(g => g.Key))}";
                    break;
            }
            var variants = Points(spec, grids).Select(pt => new Compare.Variant(pt.Label, pt.Spec.Describe(defaults), pt.Spec.Entry.Proposed,
                (ps, seed) => pt.Spec.Create(ps, seed, defaults), pt.Spec.Entry.LogsSharpness)).ToArray();
            return run.Execute(r, run.Build(r, device, variants, title, ranks), output);
        });
        return cmd;
    }
}
