using Curvature.Autodiff;
using Curvature.Engine;

namespace Curvature.Models;

/// <summary>
/// A network piece with named parameters, buffers and children, named as PyTorch names them: a child's
/// entries are prefixed by its name and a dot (<c>1.weight</c>, <c>layer1.0.bn1.running_mean</c>). The
/// forward pass is functional: it reads parameter tensors from <see cref="Bindings"/>, so the loss is a
/// function of those tensors and can be differentiated to any order.
/// </summary>
public abstract class Module
{
    private readonly List<(string Name, Parameter Value)> parameters = [];
    private readonly List<(string Name, Buffer Value)> buffers = [];
    private readonly List<(string Name, Module Value)> children = [];

    /// <summary>Registers a parameter under a local name.</summary>
    protected Parameter AddParameter(string name, NdArray value)
    {
        var p = new Parameter(value);
        parameters.Add((name, p));
        return p;
    }

    /// <summary>Registers an existing parameter (weight tying: the same object under a second name).</summary>
    protected Parameter AddParameter(string name, Parameter shared)
    {
        parameters.Add((name, shared));
        return shared;
    }

    /// <summary>Registers a buffer under a local name.</summary>
    protected Buffer AddBuffer(string name, NdArray value)
    {
        var b = new Buffer(value);
        buffers.Add((name, b));
        return b;
    }

    /// <summary>Registers a child module under a local name.</summary>
    protected T AddModule<T>(string name, T module) where T : Module
    {
        children.Add((name, module));
        return module;
    }

    /// <summary>Parameters with their dotted names, in PyTorch's order (own first, then children), each object once.</summary>
    public IReadOnlyList<(string Name, Parameter Parameter)> NamedParameters()
    {
        var list = new List<(string, Parameter)>();
        var seen = new HashSet<Parameter>(ReferenceEqualityComparer.Instance);
        Walk("", (prefix, m) =>
        {
            foreach (var (n, p) in m.parameters)
                if (seen.Add(p)) list.Add((prefix + n, p));
        });
        return list;
    }

    /// <summary>The distinct parameters, in <see cref="NamedParameters"/> order.</summary>
    public IReadOnlyList<Parameter> Parameters() => NamedParameters().Select(x => x.Parameter).ToArray();

    /// <summary>Number of trainable scalars.</summary>
    public long ParameterCount() => Parameters().Sum(p => p.Shape.Size);

    /// <summary>
    /// Moves every parameter and buffer to <paramref name="device"/> (in place: the same Parameter and Buffer
    /// objects, so tied weights stay tied and optimizers keep their references) and returns this module.
    /// </summary>
    public Module To(Device device)
    {
        foreach (var (_, p) in NamedParameters()) p.Data = p.Data.To(device);
        foreach (var (_, b) in NamedBuffers()) b.Data = b.Data.To(device);
        return this;
    }

    /// <summary>Buffers with their dotted names.</summary>
    public IReadOnlyList<(string Name, Buffer Buffer)> NamedBuffers()
    {
        var list = new List<(string, Buffer)>();
        Walk("", (prefix, m) => list.AddRange(m.buffers.Select(b => (prefix + b.Name, b.Value))));
        return list;
    }

    private void Walk(string prefix, Action<string, Module> visit)
    {
        visit(prefix, this);
        foreach (var (n, c) in children) c.Walk(prefix + n + ".", visit);
    }

    /// <summary>
    /// Every parameter and buffer by dotted name, in PyTorch's state-dict order (each module's parameters,
    /// then its buffers, then its children). A tied parameter appears once, under its first name.
    /// </summary>
    public IReadOnlyList<(string Name, NdArray Value)> StateDict()
    {
        var list = new List<(string, NdArray)>();
        var seen = new HashSet<Parameter>(ReferenceEqualityComparer.Instance);
        Walk("", (prefix, m) =>
        {
            foreach (var (n, p) in m.parameters)
                if (seen.Add(p)) list.Add((prefix + n, p.Data));
            foreach (var (n, b) in m.buffers) list.Add((prefix + n, b.Data));
        });
        return list;
    }

    /// <summary>
    /// Loads values by name. Strict: every entry must exist with the same shape and dtype, every entry of the
    /// module must be given (a tied parameter may be given under any of its names); otherwise nothing changes
    /// and one error lists every missing, unexpected and mis-shaped tensor.
    /// </summary>
    public void LoadStateDict(IReadOnlyDictionary<string, NdArray> state, string source = "state dict")
    {
        var targets = new Dictionary<string, (Shape Shape, DType DType, Action<NdArray> Set, object Owner)>();
        Walk("", (prefix, m) =>
        {
            foreach (var (n, p) in m.parameters) targets[prefix + n] = (p.Shape, p.Data.DType, v => p.Data = v.To(p.Data.Device), p);
            foreach (var (n, b) in m.buffers) targets[prefix + n] = (b.Data.Shape, b.Data.DType, v => b.Data = v.To(b.Data.Device), b);
        });
        var problems = new List<string>();
        var given = new Dictionary<object, (string Name, NdArray Value)>(ReferenceEqualityComparer.Instance);
        foreach (var (name, value) in state)
        {
            if (!targets.TryGetValue(name, out var t)) { problems.Add($"unexpected tensor '{name}' {value.Shape}"); continue; }
            if (value.Shape != t.Shape) problems.Add($"tensor '{name}' has shape {value.Shape}, expected {t.Shape}");
            else if (value.DType != t.DType) problems.Add($"tensor '{name}' has dtype {value.DType.Name()}, expected {t.DType.Name()}");
            else if (StateDictCheck.FirstNonFinite(value) is { } bad) problems.Add($"tensor '{name}' holds {bad.Value.ToString(System.Globalization.CultureInfo.InvariantCulture)} at element {bad.Index} (expected finite values)");
            // One parameter under two names (tied weights): both copies must agree, or one would silently win.
            else if (given.TryGetValue(t.Owner, out var twin) && twin.Value.Shape == value.Shape && !Same(twin.Value, value))
                problems.Add($"tensors '{twin.Name}' and '{name}' are one tied parameter but hold different values");
            given.TryAdd(t.Owner, (name, value));
        }
        foreach (var (name, t) in targets)
            if (!given.ContainsKey(t.Owner) && !state.ContainsKey(name)) problems.Add($"missing tensor '{name}' {t.Shape}");
        if (problems.Count > 0)
        {
            var distinct = problems.Distinct().ToList();
            throw new StateDictException($"{source} does not fit the model ({distinct.Count} problem{(distinct.Count > 1 ? "s" : "")}): " + string.Join("; ", distinct.Take(30)) +
                                         (distinct.Count > 30 ? $"; and {distinct.Count - 30} more" : "") + ".");
        }
        foreach (var (name, value) in state) targets[name].Set(value);
    }

    private static bool Same(NdArray a, NdArray b) => a.DType == b.DType && a.DType switch
    {
        DType.Float32 => a.ToArray<float>().AsSpan().SequenceEqual(b.ToArray<float>()),
        DType.Float64 => a.ToArray<double>().AsSpan().SequenceEqual(b.ToArray<double>()),
        _ => a.ToArray<long>().AsSpan().SequenceEqual(b.ToArray<long>()),
    };

    /// <summary>Switches this module and its children to training or evaluation behavior.</summary>
    public bool Training { get; private set; } = true;

    /// <summary>Sets training mode on the whole tree.</summary>
    public void Train(bool on = true) => Walk("", (_, m) => m.Training = on);

    /// <summary>The forward pass, reading parameters from <paramref name="bindings"/>.</summary>
    public abstract Tensor Forward(Bindings bindings, Tensor x);
}

/// <summary>A state dict that does not fit a model; the message lists every problem.</summary>
public sealed class StateDictException(string message) : Exception(message);
