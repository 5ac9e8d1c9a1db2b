using System.Globalization;
using System.Text.Json;
using Curvature.Engine;
using Curvature.Models;
using Curvature.Models.Data;
using Curvature.Optimizers;

namespace Curvature.Training;

/// <summary>What a held-out evaluation measured: losses are mean cross-entropy, ECE over 15 bins.</summary>
/// <param name="TrainLoss">Loss on (a fixed sample of) the training data.</param>
/// <param name="TrainAccuracy">Accuracy there.</param>
/// <param name="HeldOutLoss">Loss on the test (images) or validation (text) data.</param>
/// <param name="HeldOutAccuracy">Accuracy there (next-character accuracy for text).</param>
/// <param name="HeldOutEce">Expected calibration error there.</param>
/// <param name="HeldOutName">"test" or "val".</param>
public sealed record Evaluation(double TrainLoss, double TrainAccuracy, double HeldOutLoss, double HeldOutAccuracy, double HeldOutEce, string HeldOutName)
{
    /// <summary>The figures by name as <c>summary.json</c> writes them (bits per character for text).</summary>
    public Dictionary<string, double> ToDictionary()
    {
        var d = new Dictionary<string, double>
        {
            ["train_loss"] = TrainLoss,
            ["train_accuracy"] = TrainAccuracy,
            [$"{HeldOutName}_loss"] = HeldOutLoss,
            [$"{HeldOutName}_accuracy"] = HeldOutAccuracy,
            [$"{HeldOutName}_ece"] = HeldOutEce,
        };
        if (HeldOutName == "val") d["val_bits_per_char"] = HeldOutLoss / Math.Log(2);
        return d;
    }
}

/// <summary>A stream of minibatches whose cursor a checkpoint can save and restore exactly.</summary>
public interface IBatchStream
{
    /// <summary>The next minibatch (inputs, int64 targets), drawing from <paramref name="rng"/>.</summary>
    (NdArray Inputs, NdArray Targets) Next(RandomGenerator rng);
    /// <summary>The cursor as checkpoint metadata.</summary>
    Dictionary<string, string> Cursor();
    /// <summary>Restores a cursor written by <see cref="Cursor"/>.</summary>
    void Restore(IReadOnlyDictionary<string, string> meta, string path);
}

/// <summary>
/// A training task shared by <c>train</c>, <c>compare</c> and <c>sweep</c>: the data (loaded once), a model per
/// seed, minibatch streams, a fixed curvature-probe batch, a validation split and held-out evaluation. Image tasks
/// hold out the last <c>validation</c> training images (never trained on: the training images are the first N of
/// the rest); text uses the corpus's validation split. Test accuracy and calibration stay on the test set
/// (for text, which has no test split, on the validation windows).
/// </summary>
public abstract class TrainingTask
{
    /// <summary>The task names.</summary>
    public static readonly string[] Names = ["mlp-fmnist", "resnet20-fmnist", "gpt-shakespeare"];

    /// <summary>The task's name.</summary>
    public abstract string Name { get; }
    /// <summary>One line for reports: model, data, sizes.</summary>
    public abstract string Describe { get; }
    /// <summary>The model kind (mlp, resnet20 or gpt).</summary>
    public abstract string Model { get; }
    /// <summary>Minibatches in one pass over the training data.</summary>
    public abstract int StepsPerEpoch { get; }
    /// <summary>A freshly initialized model.</summary>
    public Module CreateModel(ulong seed) => CreateHostModel(seed).To(Device);

    /// <summary>The device models and batches are put on (the CPU unless the verb's --device says otherwise).</summary>
    public Device Device { get; set; } = CpuDevice.Instance;

    /// <summary>A freshly initialized model on the CPU for a seed.</summary>
    protected abstract Module CreateHostModel(ulong seed);
    /// <summary>A minibatch stream for one run.</summary>
    public IBatchStream Batches(ulong seed) => new OnDevice(HostBatches(seed), Device);

    /// <summary>The training batches as host arrays.</summary>
    protected abstract IBatchStream HostBatches(ulong seed);
    /// <summary>A fixed batch of at most <paramref name="count"/> training examples for curvature probes.</summary>
    public (NdArray Inputs, NdArray Targets) ProbeBatch(int count)
    {
        var (x, y) = HostProbeBatch(count);
        return (x.To(Device), y.To(Device));
    }

    /// <summary>The probe batch as host arrays.</summary>
    protected abstract (NdArray Inputs, NdArray Targets) HostProbeBatch(int count);

    /// <summary>The splits <see cref="Sample"/> draws from.</summary>
    public static readonly string[] Splits = ["train", "val", "test"];

    /// <summary>
    /// <paramref name="count"/> examples of a split (train, val or test; text has train and val windows), drawn
    /// without replacement (images) or as random windows (text) from a stream of <paramref name="seed"/>, as host
    /// arrays in the shapes the task's model takes: what <c>Lab batch</c> writes for <c>spectrum --batch</c>.
    /// </summary>
    public abstract (NdArray Inputs, NdArray Targets) Sample(string split, int count, ulong seed);

    private sealed class OnDevice(IBatchStream inner, Device device) : IBatchStream
    {
        public (NdArray Inputs, NdArray Targets) Next(RandomGenerator rng)
        {
            var (x, y) = inner.Next(rng);
            return (x.To(device), y.To(device));
        }

        public Dictionary<string, string> Cursor() => inner.Cursor();

        public void Restore(IReadOnlyDictionary<string, string> meta, string path) => inner.Restore(meta, path);
    }
    /// <summary>Evaluates a model in evaluation mode on the training sample and the test set (text: the validation windows).</summary>
    public abstract Evaluation Evaluate(Module model);

    /// <summary>
    /// A fingerprint of the data files the task read (the first 16 hex digits of the SHA-256 of their bytes, in
    /// order): part of a run's identity, so a resume on other data is refused even when the counts agree.
    /// </summary>
    public string DataFingerprint { get; protected init; } = "";

    /// <summary>The fingerprint of <paramref name="paths"/>' contents.</summary>
    protected static string Fingerprint(params string[] paths)
    {
        using var sha = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        foreach (var p in paths)
        {
            using var f = File.OpenRead(p);
            var buffer = new byte[1 << 20];
            for (int n; (n = f.Read(buffer)) > 0;) sha.AppendData(buffer, 0, n);
        }
        return Convert.ToHexString(sha.GetHashAndReset())[..16].ToLowerInvariant();
    }

    /// <summary>Validation loss and accuracy in evaluation mode (images: the held-out training images; text: the validation windows).</summary>
    public abstract (double Loss, double Accuracy) Validate(Module model);

    /// <summary>Examples in the validation split (images; for text, the fixed windows of T characters each evaluation reads); 0 when the task holds none out.</summary>
    public abstract int ValidationCount { get; }

    /// <summary>Writes the probe batch as <c>inputs</c> and <c>targets</c> (what <c>Lab spectrum --batch</c> reads), atomically.</summary>
    public void WriteProbeBatch(string path, (NdArray Inputs, NdArray Targets) probe) =>
        Safetensors.Write(path, [("inputs", probe.Inputs.To(CpuDevice.Instance)), ("targets", probe.Targets.To(CpuDevice.Instance))]);

    /// <summary>The state-dict names of the classifier head (reinitialized by <see cref="LoadInitialWeights"/> on request); empty when the head is tied (GPT).</summary>
    public abstract IReadOnlyList<string> HeadNames { get; }

    /// <summary>
    /// Loads weights from a safetensors file into a freshly initialized model, every name and shape checked (the error
    /// names the file and the tensor); with <paramref name="resetHead"/> the classifier head keeps its fresh
    /// initialization, for fine-tuning on other classes.
    /// </summary>
    public void LoadInitialWeights(Module model, string path, bool resetHead)
    {
        if (!File.Exists(path)) throw new TrainingException($"--init {path}: no such file.");
        if (resetHead && HeadNames.Count == 0) throw new TrainingException($"--reset-head: the {Model} has no separate head (its output layer is tied to the embedding).");
        var state = Safetensors.Read(path).ByName().ToDictionary(kv => kv.Key, kv => kv.Value);
        state.Remove("lm_head.weight"); // the tied GPT head may be stored; the model holds it once
        if (resetHead)
            foreach (var (name, value) in model.StateDict().Where(t => HeadNames.Contains(t.Name))) state[name] = value.To(CpuDevice.Instance);
        model.LoadStateDict(state.ToDictionary(kv => kv.Key, kv => kv.Value.To(Device)), path);
    }

    /// <summary>Writes a model's weights with PyTorch's names and this task's metadata, atomically.</summary>
    public void WriteWeights(string path, Module model) => Safetensors.Write(path, model.StateDict(), WeightsMetadata(model));
    /// <summary>Metadata written into <c>model.safetensors</c>.</summary>
    public abstract Dictionary<string, string> WeightsMetadata(Module model);

    /// <summary>Builds a task; <paramref name="train"/> limits the training images, <paramref name="gpt"/> configures the GPT.</summary>
    public static TrainingTask Create(string name, string dataFolder, string textPath, int batch, int? train = null, bool augment = false,
        int mlpWidth = 200, string activation = "tanh", GptConfig? gpt = null, int evalBatches = 20, int validation = 0, IReadOnlyList<int>? classes = null) => name switch
    {
        "mlp-fmnist" or "resnet20-fmnist" => new ImageTask(name, dataFolder, batch, train, augment, mlpWidth, activation, validation, classes),
        "gpt-shakespeare" when classes is not null => throw new TrainingException("--classes applies to the image tasks."),
        "gpt-shakespeare" => new TextTask(textPath, batch, gpt ?? new GptConfig(Context: 128, Layers: 4, Heads: 4, Width: 128), evalBatches),
        _ => throw new TrainingException($"task '{name}' is not one of {string.Join(", ", Names)}."),
    };

    /// <summary>
    /// How an image task splits the <paramref name="total"/> training images: validation is the last
    /// <paramref name="validation"/> of them, training the first <paramref name="limit"/> (default: all) of the rest,
    /// so the two never overlap. Out-of-range counts throw naming the option and the valid range.
    /// </summary>
    public static (int TrainCount, int ValidationStart, int ValidationCount) ImageSplit(int total, int? limit, int validation)
    {
        if (validation < 0 || validation >= total)
            throw new TrainingException($"--val {validation}: expected 0 to {total - 1} of the {total} training images held out.");
        int available = total - validation;
        if (limit is { } n && (n < 1 || n > available))
            throw new TrainingException($"--train {n}: expected 1 to {available} training images ({total} less the {validation} held out for validation).");
        return (limit ?? available, available, validation);
    }

    /// <summary>Accuracy and ECE of logits [N, C] (or [N, T, C]) against labels.</summary>
    private protected static (double Loss, double Accuracy, double Ece) Scores(List<NdArray> logits, List<NdArray> labels)
    {
        var all = NdArray.Concat(logits.Select(l => l.Reshape(-1, l.Shape[^1])).ToArray(), 0);
        var y = NdArray.Concat(labels.Select(l => l.Reshape(-1)).ToArray(), 0);
        return (all.CrossEntropy(y).ToScalar(), Metrics.Accuracy(all, y), Metrics.ExpectedCalibrationError(all, y));
    }

    /// <summary>Fashion-MNIST with the MLP (flattened inputs) or ResNet-20 ([N, 1, 28, 28]).</summary>
    private sealed class ImageTask : TrainingTask
    {
        private readonly Dataset train, test, validation;
        private readonly int batch, mlpWidth;
        private readonly bool augment, flat;
        private readonly string activation;
        private readonly string classesNote = "";

        private static Dataset Only(Dataset d, IReadOnlyList<int>? classes)
        {
            if (classes is null) return d;
            var labels = d.Labels.ToArray<long>();
            return d.Select(Enumerable.Range(0, labels.Length).Where(i => classes.Contains((int)labels[i])).Select(i => (long)i).ToArray());
        }

        public ImageTask(string name, string folder, int batch, int? limit, bool augment, int mlpWidth, string activation, int validationCount, IReadOnlyList<int>? classes)
        {
            var (trainSet, testSet) = FashionMnist.Load(folder);
            DataFingerprint = Fingerprint(new[] { "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz" }
                .Select(f => Path.Combine(folder, f)).ToArray());
            if (classes is { } cs && (cs.Count == 0 || cs.Any(c => c < 0 || c > 9)))
                throw new TrainingException($"--classes {string.Join(",", cs)}: expected class numbers from 0 to 9.");
            // The split is made on all images first, so a class subset never moves an image across it.
            var (trainCount, validationStart, _) = ImageSplit(trainSet.Count, classes is null ? limit : null, validationCount);
            validation = Only(trainSet.Slice(validationStart, validationCount), classes);
            var pool = Only(trainSet.Take(trainCount), classes);
            if (classes is not null && limit is { } n && n > pool.Count)
                throw new TrainingException($"--train {n}: only {pool.Count} training images are of classes {string.Join(",", classes)}.");
            train = pool.Take(limit ?? pool.Count);
            test = Only(testSet, classes);
            classesNote = classes is null ? "" : $", classes {string.Join(",", classes)}";
            if (batch > train.Count) throw new TrainingException($"--batch {batch} is more than the {train.Count} training images.");
            Name = name;
            this.batch = batch;
            this.augment = augment;
            this.mlpWidth = mlpWidth;
            this.activation = activation;
            flat = name == "mlp-fmnist";
            Describe = (flat ? $"MLP 784-{mlpWidth}-{mlpWidth}-10 {activation}" : "ResNet-20 (1 input channel)") +
                       $" on Fashion-MNIST ({train.Count} training, {(validationCount > 0 ? $"{validationCount} validation (the last training images), " : "")}{test.Count} test images{classesNote}{(augment ? ", random crop (padding 2) and flip" : "")})";
        }

        public override string Name { get; }
        public override string Describe { get; }
        public override string Model => flat ? "mlp" : "resnet20";
        public override int StepsPerEpoch => train.Count / batch;

        protected override Module CreateHostModel(ulong seed)
        {
            var rng = new RandomGenerator(seed);
            return flat ? Mlp.Create(rng, mlpWidth, activation) : ResNet.ResNet20(rng, 1);
        }

        private NdArray Shape(NdArray x) => flat ? x.Reshape(x.Shape[0], -1) : x;

        protected override IBatchStream HostBatches(ulong seed) => new Stream(this, seed);

        protected override (NdArray Inputs, NdArray Targets) HostProbeBatch(int count)
        {
            var p = train.Take(Math.Min(count, train.Count));
            return (Shape(p.Inputs), p.Labels);
        }

        public override (NdArray Inputs, NdArray Targets) Sample(string split, int count, ulong seed)
        {
            var from = split switch
            {
                "train" => train,
                "val" when validation.Count > 0 => validation,
                "val" => throw new TrainingException("--split val: the task holds no validation images (give --val N)."),
                "test" => test,
                _ => throw new TrainingException($"--split {split}: expected one of {string.Join(", ", Splits)}."),
            };
            if (count > from.Count) throw new TrainingException($"--n {count}: the {split} split has only {from.Count} images.");
            var picked = from.Select(Dataset.Permutation(from.Count, new RandomGenerator(seed))[..count]);
            return (Shape(picked.Inputs), picked.Labels);
        }

        private (double Loss, double Accuracy, double Ece) On(Module model, Dataset d)
        {
            var bindings = Bindings.Constant(model, training: false);
            var logits = new List<NdArray>();
            var labels = new List<NdArray>();
            foreach (var b in d.Batches(1000)) { logits.Add(model.Forward(bindings, Shape(b.Inputs).To(Device)).Data.To(CpuDevice.Instance)); labels.Add(b.Labels); }
            return Scores(logits, labels);
        }

        public override Evaluation Evaluate(Module model)
        {
            var (trainLoss, trainAcc, _) = On(model, train.Take(Math.Min(10_000, train.Count)));
            var (testLoss, testAcc, ece) = On(model, test);
            return new Evaluation(trainLoss, trainAcc, testLoss, testAcc, ece, "test");
        }

        public override int ValidationCount => validation.Count;

        public override IReadOnlyList<string> HeadNames => flat ? ["5.weight", "5.bias"] : ["fc.weight", "fc.bias"];

        public override (double Loss, double Accuracy) Validate(Module model)
        {
            if (validation.Count == 0) throw new TrainingException($"{Name}: no validation images are held out (give --val N).");
            var (loss, accuracy, _) = On(model, validation);
            return (loss, accuracy);
        }

        public override Dictionary<string, string> WeightsMetadata(Module model) =>
            flat ? new() { ["model"] = "mlp", ["activation"] = activation, ["loss"] = "ce" } : new() { ["model"] = "resnet20", ["loss"] = "ce" };

        private sealed class Stream(ImageTask task, ulong seed) : IBatchStream
        {
            private readonly BatchStream stream = new(task.train, task.batch);

            public (NdArray Inputs, NdArray Targets) Next(RandomGenerator rng)
            {
                var b = stream.Next(rng);
                var x = task.augment ? Augmentation.CropAndFlip(b.Inputs, 2, true, rng) : b.Inputs;
                return (task.Shape(x), b.Labels);
            }

            public Dictionary<string, string> Cursor() => stream.Cursor();

            public void Restore(IReadOnlyDictionary<string, string> meta, string path) => stream.Restore(meta, path, seed);
        }
    }

    /// <summary>A character corpus (tinyshakespeare) with the GPT: random windows of T + 1 characters.</summary>
    private sealed class TextTask : TrainingTask
    {
        private readonly CharCorpus corpus;
        private readonly int batch, evalBatches;
        private readonly GptConfig config;

        public TextTask(string path, int batch, GptConfig gpt, int evalBatches)
        {
            if (Directory.Exists(path)) throw new TrainingException($"--text {path} is a folder; expected the corpus file.");
            if (!File.Exists(path)) throw new TrainingException($"--text {path}: no such file (the GPT trains on a character corpus such as tinyshakespeare.txt).");
            corpus = CharCorpus.Load(path);
            DataFingerprint = Fingerprint(path);
            config = gpt with { Vocabulary = corpus.Vocabulary.Count };
            try { config.Validate(); }
            catch (ArgumentException e) { throw new TrainingException(e.Message); }
            this.batch = batch;
            this.evalBatches = evalBatches;
            Describe = $"GPT {config.Layers} layers, d {config.Width}, {config.Heads} heads, T {config.Context}, dropout {config.Dropout} on {Path.GetFileName(path)} " +
                       $"({corpus.Vocabulary.Count} characters; {corpus.Train.Length:N0} training, {corpus.Validation.Length:N0} validation)";
        }

        public override string Name => "gpt-shakespeare";
        public override string Describe { get; }
        public override string Model => "gpt";
        public override int StepsPerEpoch => Math.Max(1, corpus.Train.Length / (batch * config.Context));
        protected override Module CreateHostModel(ulong seed) => new Gpt(config, new RandomGenerator(seed));
        protected override IBatchStream HostBatches(ulong seed) => new Stream(this);

        protected override (NdArray Inputs, NdArray Targets) HostProbeBatch(int count) =>
            corpus.Batch(Math.Max(1, count), config.Context, new RandomGenerator(54321));

        public override (NdArray Inputs, NdArray Targets) Sample(string split, int count, ulong seed) => split switch
        {
            "train" or "val" => corpus.Batch(count, config.Context, new RandomGenerator(seed), validation: split == "val"),
            "test" => throw new TrainingException("--split test: the corpus has train and val splits only."),
            _ => throw new TrainingException($"--split {split}: expected one of {string.Join(", ", Splits)}."),
        };

        // Fixed windows (a stream of their own) so evaluations along a run, and across runs, compare like with like.
        private (double Loss, double Accuracy, double Ece) On(Module model, bool validation)
        {
            var windows = new RandomGenerator(12345, validation ? 0UL : 1UL << 40);
            var bindings = Bindings.Constant(model, training: false);
            var logits = new List<NdArray>();
            var labels = new List<NdArray>();
            for (int i = 0; i < evalBatches; i++)
            {
                var (x, y) = corpus.Batch(batch, config.Context, windows, validation);
                logits.Add(model.Forward(bindings, x.To(Device)).Data.To(CpuDevice.Instance));
                labels.Add(y);
            }
            return Scores(logits, labels);
        }

        public override Evaluation Evaluate(Module model)
        {
            var (trainLoss, trainAcc, _) = On(model, false);
            var (valLoss, valAcc, ece) = On(model, true);
            return new Evaluation(trainLoss, trainAcc, valLoss, valAcc, ece, "val");
        }

        public override int ValidationCount => evalBatches * batch;

        public override IReadOnlyList<string> HeadNames => [];

        public override (double Loss, double Accuracy) Validate(Module model)
        {
            var (loss, accuracy, _) = On(model, true);
            return (loss, accuracy);
        }

        public override Dictionary<string, string> WeightsMetadata(Module model) => new()
        {
            ["model"] = "gpt",
            ["loss"] = "ce",
            ["n_head"] = config.Heads.ToString(CultureInfo.InvariantCulture),
            ["vocabulary"] = JsonSerializer.Serialize(new string(corpus.Vocabulary.ToArray())),
        };

        /// <summary>Windows drawn from the run's own stream: the random-stream offset is the whole cursor.</summary>
        private sealed class Stream(TextTask task) : IBatchStream
        {
            public (NdArray Inputs, NdArray Targets) Next(RandomGenerator rng) => task.corpus.Batch(task.batch, task.config.Context, rng);
            public Dictionary<string, string> Cursor() => [];
            public void Restore(IReadOnlyDictionary<string, string> meta, string path) { }
        }
    }
}
