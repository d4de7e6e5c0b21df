namespace Tessera.Abstractions;

/// <summary>What to do when a device cannot run every node of a graph, or is not available at all.</summary>
public enum FallbackPolicy
{
    /// <summary>Refuse: the operator asked for this device and gets it or an error naming what could not run.</summary>
    Strict,
    /// <summary>Run what the device cannot on the CPU, and report exactly what fell back.</summary>
    Allow,
}

/// <summary>How far graph optimizations go when compiling.</summary>
public enum OptimizationLevel
{
    None,
    Basic,
    Extended,
    All,
}

/// <summary>Options for <see cref="IDevice.Compile"/>. Immutable; use <c>with</c> to derive variants.</summary>
public sealed record CompileOptions
{
    /// <summary>Graph optimization level. Default: all.</summary>
    public OptimizationLevel Optimization { get; init; } = OptimizationLevel.All;

    /// <summary>Threads used inside one operator (0 = the device's default).</summary>
    public int IntraOpThreads { get; init; }

    /// <summary>Threads used across independent operators (0 = the device's default; 1 = sequential execution).</summary>
    public int InterOpThreads { get; init; }

    /// <summary>Fallback policy for nodes this device cannot run. Default: strict.</summary>
    public FallbackPolicy Fallback { get; init; } = FallbackPolicy.Strict;

    /// <summary>Use the device's on-disk cache of optimized graphs, when it has one. Default: true.</summary>
    public bool UseCompiledModelCache { get; init; } = true;

    /// <summary>
    /// Symbolic dimensions fixed to a value at compile time (e.g. <c>batch → 1</c>), which lets the device
    /// specialize the graph. Empty by default.
    /// </summary>
    public IReadOnlyDictionary<string, long> FixedDimensions { get; init; } = new Dictionary<string, long>();

    /// <summary>Device-specific settings (<c>key → value</c>); unknown keys are an error naming the key.</summary>
    public IReadOnlyDictionary<string, string> DeviceSettings { get; init; } = new Dictionary<string, string>();

    /// <summary>A stable text form of every option, used in cache keys and reports.</summary>
    public string ToCanonicalString() =>
        $"opt={Optimization};intra={IntraOpThreads};inter={InterOpThreads};fallback={Fallback};" +
        $"fixed=[{string.Join(",", FixedDimensions.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key}={p.Value}"))}];" +
        $"settings=[{string.Join(",", DeviceSettings.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key}={p.Value}"))}]";
}
