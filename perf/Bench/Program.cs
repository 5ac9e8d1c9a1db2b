using System.CommandLine;
using BenchmarkDotNet.Running;
using Curvature.Bench;

// Quick tables (engine and its baselines timed in one run) or the BenchmarkDotNet suites. OpenBLAS's best
// kernel for this CPU is the baseline (OpenBlas.Prepare): without the OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE
// overrides, or with the newest kernel the CPU runs where OpenBLAS is older than the CPU and falls back.
return BenchCommandLine.Run(args, Console.Out, Console.Error);

namespace Curvature.Bench
{
    /// <summary>
    /// The Bench's verbs and options. An unknown verb or option, or a bad value, prints one error and the verbs and
    /// exits 2 before any timing; no arguments prints the verbs and exits 2; <c>--help</c> exits 0.
    /// </summary>
    internal static class BenchCommandLine
    {
        public const int UsageError = 2;

        /// <summary>The model keys of <c>models --only</c> (prefixes of these are accepted).</summary>
        internal static readonly string[] ModelKeys = ModelTables.Keys;

        public static int Run(string[] args, TextWriter output, TextWriter error)
        {
            var quick = new Option<bool>("--quick") { Description = "Fewer rounds (7 instead of 21; 3 instead of 7 for models)" };
            var root = new RootCommand("Curvature Bench: the engine against OpenBLAS and PyTorch, timed in the same run.");

            Command Table(string name, string description, Action<int> run)
            {
                var c = new Command(name, description) { quick };
                c.SetAction(r => { run(r.GetValue(quick) ? 7 : 21); return 0; });
                return c;
            }

            var resnet = new Option<bool>("--resnet") { Description = "ResNet-20's convolution GEMM shapes instead of square SGEMM" };
            var skinny = new Option<bool>("--skinny") { Description = "The models' skinny products (N or K of 10-200, M in thousands)" };
            var standalone = new Option<bool>("--standalone") { Description = "Also time OpenBLAS's SGEMM in a standalone C process (perf/openblas/sgemm.c, built with gcc) to check the in-process figure" };
            var gemm = new Command("gemm", "SGEMM 256-2048 (or --resnet, --skinny shapes): engine vs OpenBLAS's native kernel, one and all threads") { quick, resnet, skinny, standalone };
            gemm.SetAction(r =>
            {
                int repeats = r.GetValue(quick) ? 7 : 21;
                if (r.GetValue(resnet)) QuickTables.ResNetGemm(repeats);
                else if (r.GetValue(skinny)) QuickTables.SkinnyGemm(repeats);
                else QuickTables.SquareGemm(repeats, r.GetValue(standalone));
                return 0;
            });
            root.Subcommands.Add(gemm);
            root.Subcommands.Add(Table("mlp", "MLP forward / gradient / HVP at batch 5000, and its GEMMs vs OpenBLAS", QuickTables.Mlp));
            root.Subcommands.Add(Table("lanczos", "20 Lanczos iterations vs 20 HVPs at batch 5000", QuickTables.Lanczos));
            root.Subcommands.Add(Table("conv", "ResNet-20's convolutions (forward, both adjoints, pairs) vs OpenBLAS GEMM", QuickTables.Convolutions));
            root.Subcommands.Add(Table("elementwise", "Memory-bound ops on 8 MB and the normalization kernels vs a streaming scale-shift", QuickTables.ElementWiseOps));
            root.Subcommands.Add(Table("batchnorm", "A training-mode BatchNorm layer: fused primitive vs Normalize + ScaleShift", QuickTables.BatchNormLayer));
            var specBatch = new Option<int>("--batch") { Description = "Examples in the batch", DefaultValueFactory = _ => 128 };
            var specIters = new Option<int>("--iters") { Description = "Lanczos iterations (the whole model's and each block's cap)", DefaultValueFactory = _ => 40 };
            var specProbes = new Option<int>("--probes") { Description = "SLQ probes", DefaultValueFactory = _ => 10 };
            var specRounds = new Option<int>("--rounds") { Description = "Interleaved rounds of the two reports (the median is shown)", DefaultValueFactory = _ => 3 };
            foreach (var (option, least, what) in new[] { (specBatch, 1, "examples"), (specIters, 5, "iterations"), (specProbes, 1, "probes"), (specRounds, 1, "rounds") })
                option.Validators.Add(r =>
                {
                    int v = r.GetValueOrDefault<int>();
                    if (v < least) r.AddError($"{option.Name}: {v}; expected at least {least} {what}.");
                });
            var specProfile = new Option<string?>("--profile") { Description = "Instead of the tables: time per primitive in one whole HVP and one recorded sweep of the named parameter's block (e.g. layer1.0.conv1.weight), the quietest of five runs" };
            var spectrum = new Command("spectrum", "Lab spectrum --per-layer against the whole-model report on ResNet-20 (k 5), and a block product per parameter against a whole HVP") { specBatch, specIters, specProbes, specRounds, specProfile };
            spectrum.SetAction(r =>
            {
                if (r.GetValue(specProfile) is { } block) return SpectrumTables.Profile(r.GetValue(specBatch), block, error);
                SpectrumTables.PerLayer(r.GetValue(specBatch), 5, r.GetValue(specIters), r.GetValue(specProbes), r.GetValue(specRounds));
                return 0;
            });
            root.Subcommands.Add(spectrum);
            root.Subcommands.Add(Table("noise", "Per-example gradients and directional derivatives vs a batch gradient, and Lab noise vs Lab spectrum, on the MLP at batch 1,000", QuickTables.Noise));

            var only = new Option<string?>("--only") { Description = $"One model (a key or its prefix: {string.Join(", ", ModelKeys)})" };
            only.Validators.Add(r =>
            {
                var v = r.GetValueOrDefault<string?>();
                if (v is not null && !ModelKeys.Any(k => k.StartsWith(v, StringComparison.Ordinal)))
                    r.AddError($"--only: no model key starts with '{v}'; expected a prefix of {string.Join(", ", ModelKeys)}.");
            });
            var profile = new Option<bool>("--profile") { Description = "Time per primitive in one gradient and one HVP (the quietest of five runs)" };
            var trainOnly = new Option<bool>("--train-only") { Description = "Only the gradient and the train step" };
            var torch = new Option<bool>("--torch") { Description = "Interleave rounds of PyTorch (perf/torch/bench.py, Debian's python3-torch) with the engine's and print engine / PyTorch ratios" };
            var models = new Command("models", "Forward / gradient / HVP / train step of the MODELS.md models, each against its GEMM floor (and PyTorch with --torch)") { quick, only, profile, trainOnly, torch };
            models.SetAction(r =>
            {
                if (r.GetValue(profile)) ModelTables.Profile(r.GetValue(only));
                else return ModelTables.Run(r.GetValue(quick) ? 3 : 7, r.GetValue(only), r.GetValue(trainOnly), r.GetValue(torch), error);
                return 0;
            });
            root.Subcommands.Add(models);

            var suites = new Command("suites", "The BenchmarkDotNet suites; the remaining arguments go to BenchmarkDotNet (e.g. suites --filter '*')")
            {
                TreatUnmatchedTokensAsErrors = false,
            };
            suites.SetAction(r =>
            {
                BenchmarkSwitcher.FromAssembly(typeof(QuickTables).Assembly).Run(r.UnmatchedTokens.ToArray());
                return 0;
            });
            root.Subcommands.Add(suites);

            var config = new InvocationConfiguration { Output = output, Error = error };
            string verbs = $"verbs: {string.Join(", ", root.Subcommands.Select(c => c.Name))} (Bench --help, Bench VERB --help)";
            if (args.Length == 0 || !root.Subcommands.Any(c => c.Name == args[0]) && args[0] is not ("-h" or "--help" or "-?" or "--version"))
            {
                error.WriteLine(args.Length == 0 ? "error: no verb given." : $"error: unknown verb '{args[0]}'.");
                error.WriteLine(verbs);
                return UsageError;
            }
            var parsed = root.Parse(args);
            if (parsed.Errors.Count > 0)
            {
                foreach (var e in parsed.Errors) error.WriteLine($"error: {e.Message}");
                error.WriteLine(verbs);
                return UsageError;
            }
            // Only the verbs that time OpenBLAS load it, and before anything else does.
            if (parsed.Action is not System.CommandLine.Help.HelpAction && parsed.CommandResult.Command.Name is "gemm" or "mlp" or "conv" or "models"
                && OpenBlas.Prepare(args) is { } code) return code;
            return parsed.Invoke(config);
        }
    }
}
