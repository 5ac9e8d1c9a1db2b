using System.CommandLine;
using System.Globalization;
using Curvature.Optimizers;

namespace Curvature.Lab;

/// <summary>
/// <c>Lab sweep</c>: one option of a curvature-aware optimiser over a list of values, with the report of
/// <c>compare</c>. CAEO's δ (<c>--delta 0.1,0.5,1.0</c>) or estimator (<c>--estimator power,hutchinson</c>);
/// DCAO's α or β (<c>--alpha</c>, <c>--beta</c>). The seeds' ablations are presets: <c>--preset caeo-delta</c>
/// (δ ∈ {0.1, 0.5, 1.0}) and <c>--preset caeo-estimator</c> (power iteration, Hutchinson and K-FAC).
/// </summary>
public static class Sweep
{
    /// <summary>Valid presets.</summary>
    public static readonly string[] Presets = ["caeo-delta", "caeo-estimator"];

    /// <summary>Estimators available to the sweep.</summary>
    public static readonly string[] Estimators = ["power", "hutchinson", "kfac"];

    internal static Command Command(TextWriter output)
    {
        var run = new Compare.RunOptions("out/sweep");
        var optimizer = Options.OneOf("--optimizer", "The optimiser swept: caeo, caeo-momentum or dcao", "caeo", "caeo", "caeo-momentum", "dcao");
        var preset = new Option<string?>("--preset") { Description = $"A named ablation: {string.Join(", ", Presets)}" };
        preset.AcceptOnlyFromAmong(Presets);
        var delta = Options.PositiveList("--delta", "CAEO's δ values, in (0, 2)", []);
        var estimator = new Option<string?>("--estimator") { Description = $"CAEO's estimators, comma-separated: {string.Join(",", Estimators)}" };
        estimator.Validators.Add(r =>
        {
            foreach (var e in (r.GetValueOrDefault<string?>() ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                if (!Estimators.Contains(e)) r.AddError($"--estimator: '{e}' is not one of {string.Join(", ", Estimators)}.");
        });
        var alpha = Options.PositiveList("--alpha", "DCAO's α values", []);
        var beta = Options.PositiveList("--beta", "DCAO's β values", []);
        var cmd = new Command("sweep", "One optimiser option over a list of values, with the compare report");
        foreach (var o in new Option[] { optimizer, preset, delta, estimator, alpha, beta }) cmd.Options.Add(o);
        run.AddTo(cmd);
        cmd.Validators.Add(r =>
        {
            try { Check(r); }
            catch (InvalidOperationException) { } // an option that failed its own validation; its error is reported already
        });
        void Check(System.CommandLine.Parsing.CommandResult r)
        {
            int swept = (r.GetValue(preset) is null ? 0 : 1) + (r.GetValue(delta) is { Length: > 0 } ? 1 : 0) + (r.GetValue(estimator) is { Length: > 0 } ? 1 : 0)
                        + (r.GetValue(alpha) is { Length: > 0 } ? 1 : 0) + (r.GetValue(beta) is { Length: > 0 } ? 1 : 0);
            if (swept != 1) r.AddError($"sweep: give exactly one of --preset, --delta, --estimator, --alpha, --beta (got {swept}).");
            if (r.GetValue(delta) is { Length: > 0 } d && d.Any(x => x >= 2)) r.AddError("--delta: every δ must be below 2.");
            bool dcao = r.GetValue(optimizer) == "dcao";
            if (dcao && (r.GetValue(delta) is { Length: > 0 } || r.GetValue(estimator) is { Length: > 0 } || r.GetValue(preset) is not null))
                r.AddError("sweep: --delta, --estimator and --preset apply to caeo; DCAO sweeps --alpha or --beta.");
            if (!dcao && (r.GetValue(alpha) is { Length: > 0 } || r.GetValue(beta) is { Length: > 0 }))
                r.AddError("sweep: --alpha and --beta apply to --optimizer dcao.");
        }
        cmd.SetAction(r =>
        {
            var device = run.Common.Apply(r, output);
            int t = r.GetValue(run.ProbeEvery);
            var baseCurvature = new OptimizerFactory.Curvature(t);
            string name = r.GetValue(optimizer)!;
            string F(double v) => v.ToString("G4", CultureInfo.InvariantCulture);
            Compare.Variant Caeo(double delta, CurvatureEstimator est, string label)
            {
                var c = baseCurvature with { Delta = delta, Estimator = est };
                return new Compare.Variant(label, $"{name}, δ {F(delta)}, {est.ToString().ToLowerInvariant()}", (ps, seed) => OptimizerFactory.Create(name, c, ps, seed));
            }
            CurvatureEstimator Est(string e) => OptimizerFactory.Estimator(e);
            Compare.Variant[] variants;
            string title;
            switch (r.GetValue(preset))
            {
                case "caeo-delta":
                    variants = new[] { 0.1, 0.5, 1.0 }.Select(d => Caeo(d, CurvatureEstimator.Power, $"δ={F(d)}")).ToArray();
                    title = "CAEO ablation over δ";
                    break;
                case "caeo-estimator":
                    variants = Estimators.Select(e => Caeo(0.5, Est(e), e)).ToArray();
                    title = "CAEO ablation over the λmax estimator";
                    break;
                default:
                    if (r.GetValue(delta) is { Length: > 0 } ds) { variants = ds.Select(d => Caeo(d, CurvatureEstimator.Power, $"δ={F(d)}")).ToArray(); title = $"{name} over δ"; }
                    else if (r.GetValue(estimator) is { Length: > 0 } es)
                    {
                        variants = es.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(e => Caeo(0.5, Est(e), e)).ToArray();
                        title = $"{name} over the estimator";
                    }
                    else
                    {
                        bool overAlpha = r.GetValue(alpha) is { Length: > 0 };
                        var values = overAlpha ? r.GetValue(alpha)! : r.GetValue(beta)!;
                        variants = values.Select(v => new Compare.Variant(overAlpha ? $"α={F(v)}" : $"β={F(v)}",
                            $"dcao relative, η₀ 0.1, μ₀ 0.9, {(overAlpha ? $"α {F(v)}, β 0.5" : $"α 0.5, β {F(v)}")}, c 0.5",
                            (ps, seed) => new Dcao(0.1, 0.9, 1e-4, overAlpha ? v : 0.5, overAlpha ? 0.5 : v, 0.5, t, relative: true, seed: seed))).ToArray();
                        title = $"DCAO over {(overAlpha ? "α" : "β")}";
                    }
                    break;
            }
            return run.Execute(r, run.Build(r, device, variants, baseCurvature, title), output);
        });
        return cmd;
    }
}
