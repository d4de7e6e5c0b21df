namespace Tessera.Abstractions;

/// <summary>
/// A graph compiled for one device, ready to run. Thread-safe: concurrent <see cref="Run"/> calls are allowed.
/// Dispose it to free the device resources (device tensors it produced stay valid until they are disposed).
/// </summary>
public interface ICompiledModel : IDisposable
{
    /// <summary>The device it runs on.</summary>
    DeviceId Device { get; }

    /// <summary>Input signature, in graph order.</summary>
    IReadOnlyList<TensorSpec> Inputs { get; }

    /// <summary>Output signature, in graph order.</summary>
    IReadOnlyList<TensorSpec> Outputs { get; }

    /// <summary>How the compile went: time, cache use, what fell back to the CPU.</summary>
    CompileReport Report { get; }

    /// <summary>
    /// Runs the graph once. Every graph input must be given, as a <see cref="HostTensor"/> (read in place during
    /// the call) or an <see cref="IDeviceTensor"/> of this device (used without a copy). Returns the outputs named
    /// in <paramref name="outputNames"/> (all outputs when null) as device tensors owned by the caller.
    /// Throws <see cref="ModelRunException"/> naming the input or output for a missing, unknown or mis-shaped tensor.
    /// </summary>
    RunOutputs Run(IReadOnlyDictionary<string, ITensorValue> inputs, IReadOnlyList<string>? outputNames = null);
}

/// <summary>Outputs of one run, by name. Disposing it disposes every tensor not taken with <see cref="Take"/>.</summary>
public sealed class RunOutputs : IDisposable
{
    private readonly Dictionary<string, IDeviceTensor> _tensors;

    public RunOutputs(IEnumerable<KeyValuePair<string, IDeviceTensor>> tensors) =>
        _tensors = new Dictionary<string, IDeviceTensor>(tensors, StringComparer.Ordinal);

    /// <summary>Output names present.</summary>
    public IReadOnlyCollection<string> Names => _tensors.Keys;

    /// <summary>An output, still owned by this collection.</summary>
    public IDeviceTensor this[string name] => _tensors.TryGetValue(name, out var t)
        ? t
        : throw new KeyNotFoundException($"No output named '{name}'. Outputs: {string.Join(", ", _tensors.Keys)}.");

    /// <summary>Removes an output from the collection; the caller now owns (and disposes) it.</summary>
    public IDeviceTensor Take(string name)
    {
        var t = this[name];
        _tensors.Remove(name);
        return t;
    }

    public void Dispose()
    {
        foreach (var t in _tensors.Values) t.Dispose();
        _tensors.Clear();
    }
}
