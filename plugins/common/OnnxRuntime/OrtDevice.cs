using System.Diagnostics;
using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using Tessera.Abstractions;

namespace Tessera.Plugins.OnnxRuntime;

/// <summary>
/// A device backed by one ONNX Runtime execution provider. Subclasses add their provider to the session
/// options; compiling, caching optimized graphs, binding and running are shared.
/// </summary>
public abstract class OrtDevice : IDevice
{
    private readonly OptimizedGraphCache? _cache;

    protected OrtDevice(DeviceInfo info, OptimizedGraphCache? cache)
    {
        Info = info;
        _cache = cache;
    }

    public DeviceInfo Info { get; }

    /// <summary>The execution provider's name in ONNX Runtime (e.g. <c>CPUExecutionProvider</c>).</summary>
    protected abstract string ProviderName { get; }

    /// <summary>Device settings this device accepts in <see cref="CompileOptions.DeviceSettings"/>.</summary>
    protected virtual IReadOnlyCollection<string> AllowedDeviceSettings => [];

    /// <summary>Adds the execution provider (and its options) to the session options. The CPU needs nothing.</summary>
    protected abstract void AppendExecutionProvider(SessionOptions options, CompileOptions compile);

    /// <summary>
    /// What the optimized graph depends on besides the model and options: fully optimized graphs can contain
    /// hardware-specific layouts (ONNX Runtime's NCHWc transforms), so a cache entry is only reused on the same hardware.
    /// </summary>
    protected virtual string HardwareFingerprint => Info.Name;

    /// <summary>Threads used inside one operator when the compile options leave it at 0.</summary>
    protected virtual int DefaultIntraOpThreads => 0;

    /// <summary>Where run outputs are allocated; default CPU memory.</summary>
    protected internal virtual OrtMemoryInfo OutputMemory => OrtMemoryInfo.DefaultInstance;

    /// <summary>Whether tensors this device produces can be read directly by the CPU.</summary>
    protected internal virtual bool OutputsHostAccessible => true;

    private void EnsureAvailable()
    {
        if (!Info.IsAvailable) throw new DeviceUnavailableException(Info.Id, Info.UnavailableReason ?? "no reason given");
    }

    public GraphSupportReport CheckSupport(ModelSource model, CompileOptions options)
    {
        if (!Info.IsAvailable)
            return new GraphSupportReport(Info.Id, false, [], $"{Info.Id} is not available: {Info.UnavailableReason}");
        List<OnnxNodeLister.Node> nodes;
        try
        {
            nodes = OnnxNodeLister.List(model.GetBytes());
        }
        catch (FormatException e)
        {
            return new GraphSupportReport(Info.Id, false, [], $"'{model}' is not a readable ONNX model ({e.Message}).");
        }
        try
        {
            var placements = ExecutedPlacements(model, options, out var note);
            if (placements is null)
            {
                // ONNX Runtime could not tell (the graph did not run on generated inputs): it loaded, so it can run.
                return new GraphSupportReport(Info.Id, true, nodes.Select(n => new NodePlacement(n.Name, n.QualifiedOpType, OnDevice: true, "assumed: " + note)).ToList(),
                    $"The graph compiles on {Info.Id} ({ProviderName}); per-node placement unknown ({note}).");
            }
            var fallback = placements.Where(p => !p.OnDevice).ToList();
            var canRun = fallback.Count == 0 || options.Fallback == FallbackPolicy.Allow;
            return new GraphSupportReport(Info.Id, canRun, placements, fallback.Count == 0
                ? $"All {placements.Count} executed nodes run on {Info.Id} ({ProviderName})."
                : $"{placements.Count - fallback.Count} of {placements.Count} executed nodes run on {Info.Id}; {fallback.Count} fall back to the CPU ({string.Join(", ", fallback.Select(f => f.OpType).Distinct().Take(8))}).");
        }
        catch (TesseraException e)
        {
            // ONNX Runtime names the op it has no kernel for (not always the node): name the nodes of that op.
            var blamed = nodes.Where(n => System.Text.RegularExpressions.Regex.IsMatch(e.Message, $@"\b{System.Text.RegularExpressions.Regex.Escape(n.OpType)}\b")
                    && n.OpType.Length > 0 && (e is not ModelLoadException || !e.Message.Contains("not a valid ONNX", StringComparison.Ordinal)))
                .Select(n => new NodePlacement(n.Name, n.QualifiedOpType, OnDevice: false, FirstLine(e.Message))).ToList();
            return new GraphSupportReport(Info.Id, false, blamed, blamed.Count == 0 ? e.Message
                : $"{e.Message.TrimEnd('.')} (node(s): {string.Join(", ", blamed.Take(8).Select(b => $"{b.OpType} '{b.NodeName}'"))}).");
        }
    }

    /// <summary>
    /// Where ONNX Runtime ran each node: the graph is compiled with profiling on (fallback allowed, so every node has a
    /// place), run once on zero inputs, and the profile's per-node <c>provider</c> is read. Null (with a note) when
    /// the graph cannot run on generated inputs.
    /// </summary>
    protected List<NodePlacement>? ExecutedPlacements(ModelSource model, CompileOptions options, out string note)
    {
        var profileDir = Directory.CreateTempSubdirectory("tessera-placement-");
        try
        {
            // Unoptimized, so nodes keep the names and op types of the graph as written.
            using var so = CreateSessionOptions(options with { Fallback = FallbackPolicy.Allow, Optimization = OptimizationLevel.None });
            // The prefix first: enabling profiling passes the prefix set at that moment to ONNX Runtime (set after, the
            // profile lands in the current directory).
            so.ProfileOutputPathPrefix = Path.Combine(profileDir.FullName, "profile");
            so.EnableProfiling = true;
            using var session = CreateSession(model, so);
            var values = new List<OrtValue>();
            string profile;
            try
            {
                foreach (var (name, meta) in session.InputMetadata)
                {
                    var shape = meta.Dimensions.Select((d, i) => d >= 0 ? d : meta.SymbolicDimensions[i] switch
                    {
                        var s when s.Contains("total", StringComparison.OrdinalIgnoreCase) => 2L, // past + new, the KV-cache convention
                        _ => 1L,
                    }).ToArray();
                    var value = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, meta.ElementDataType, shape);
                    value.GetTensorMutableRawData().Clear();
                    values.Add(value);
                }
                using var run = new RunOptions();
                using (session.Run(run, session.InputMetadata.Keys.ToList(), values, session.OutputNames)) { }
            }
            catch (OnnxRuntimeException e)
            {
                note = $"a trial run on zero inputs failed: {FirstLine(e.Message)}";
                return null;
            }
            finally
            {
                profile = session.EndProfiling();
                foreach (var v in values) v.Dispose();
            }
            note = "";
            return ReadProfile(File.ReadAllText(Path.IsPathRooted(profile) ? profile : Path.Combine(Environment.CurrentDirectory, profile)));
        }
        finally
        {
            try { profileDir.Delete(recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>Node events of an ONNX Runtime profile (JSON array): one placement per node, from args.provider.</summary>
    internal List<NodePlacement> ReadProfile(string json)
    {
        using var doc = System.Text.Json.JsonDocument.Parse(json);
        var seen = new Dictionary<string, NodePlacement>(StringComparer.Ordinal);
        foreach (var e in doc.RootElement.EnumerateArray())
        {
            if (!e.TryGetProperty("cat", out var cat) || cat.GetString() != "Node") continue;
            if (!e.TryGetProperty("args", out var args) || !args.TryGetProperty("provider", out var provider)) continue;
            var name = e.GetProperty("name").GetString() ?? "";
            if (name.EndsWith("_kernel_time", StringComparison.Ordinal)) name = name[..^"_kernel_time".Length];
            else continue;
            var op = args.TryGetProperty("op_name", out var o) ? o.GetString() ?? "" : "";
            var p = provider.GetString() ?? "";
            seen[name] = new NodePlacement(name, op, p == ProviderName, p == ProviderName ? null : $"runs on {p}");
        }
        return seen.Values.ToList();
    }

    public ICompiledModel Compile(ModelSource model, CompileOptions options)
    {
        EnsureAvailable();
        var watch = Stopwatch.StartNew();
        var notes = new List<string>();
        var useCache = _cache is not null && options.UseCompiledModelCache && options.Optimization != OptimizationLevel.None;
        string? key = useCache
            ? OptimizedGraphCache.Key(model.ContentHash, options.ToCanonicalString(), ProviderName, OrtEnv.Instance().GetVersionString(), HardwareFingerprint)
            : null;

        InferenceSession? session = null;
        bool fromCache = false;
        string? cachePath = null;

        if (key is not null && File.Exists(_cache!.PathFor(key)))
        {
            // Already optimized: load it without optimizing again.
            using var so = CreateSessionOptions(options with { Optimization = OptimizationLevel.None });
            try
            {
                session = CreateSession(ModelSource.FromFile(_cache.PathFor(key)), so);
                fromCache = true;
                cachePath = _cache.PathFor(key);
            }
            catch (TesseraException e)
            {
                notes.Add($"cached optimized graph {_cache.PathFor(key)} could not be loaded and was rebuilt ({e.Message})");
                _cache.Evict(key);
            }
        }

        if (session is null)
        {
            using var so = CreateSessionOptions(options);
            string? temp = null;
            if (key is not null)
            {
                temp = _cache!.TempPathFor(key);
                so.OptimizedModelFilePath = temp;
            }
            try
            {
                session = CreateSession(model, so);
            }
            catch (FallbackNotAllowedException e) when (e.FallbackNodes.Count == 0)
            {
                // Name the nodes: ask ONNX Runtime where it would have put each one.
                var nodes = ExecutedPlacements(model, options, out _)?.Where(p => !p.OnDevice).ToList();
                if (nodes is null || nodes.Count == 0) throw;
                throw new FallbackNotAllowedException(Info.Id, model.DisplayName, nodes);
            }
            if (temp is not null)
            {
                try
                {
                    cachePath = _cache!.Commit(temp, key!);
                }
                catch (IOException e)
                {
                    notes.Add($"optimized graph was not cached ({e.Message})");
                    try { File.Delete(temp); } catch (IOException) { }
                }
            }
        }

        // An accelerator allowed to fall back: say which nodes ONNX Runtime put on the CPU instead.
        IReadOnlyList<NodePlacement> fellBack = [];
        if (options.Fallback == FallbackPolicy.Allow && ProviderName != "CPUExecutionProvider")
        {
            fellBack = ExecutedPlacements(model, options, out var unknown)?.Where(p => !p.OnDevice).ToList() ?? [];
            if (unknown.Length > 0) notes.Add($"per-node placement unknown: {unknown}");
        }
        var report = new CompileReport(Info.Id, model.DisplayName, watch.Elapsed, fromCache, cachePath, fellBack, notes);
        try
        {
            return new OrtCompiledModel(this, model.DisplayName, session, report);
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    public IDeviceTensor CopyToDevice(HostTensor tensor)
    {
        EnsureAvailable();
        var value = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, OrtTypes.ToOrt(tensor.ElementType), tensor.Shape);
        try
        {
            tensor.AsBytes().CopyTo(value.GetTensorMutableRawData());
            return new OrtDeviceTensor(Info.Id, value, hostAccessible: true);
        }
        catch
        {
            value.Dispose();
            throw;
        }
    }

    /// <summary>Session options for a compile; validates device settings first.</summary>
    protected SessionOptions CreateSessionOptions(CompileOptions options)
    {
        foreach (var k in options.DeviceSettings.Keys)
            if (!AllowedDeviceSettings.Contains(k))
                throw new ArgumentException($"Unknown device setting '{k}' for {Info.Id}. Allowed settings: {(AllowedDeviceSettings.Count == 0 ? "none" : string.Join(", ", AllowedDeviceSettings))}.");
        if (options.IntraOpThreads < 0 || options.InterOpThreads < 0)
            throw new ArgumentException("Thread counts must be 0 (device default) or positive.");

        var so = new SessionOptions();
        try
        {
            // Warnings (e.g. "optimized model is hardware specific", which the cache key accounts for) stay out of user output.
            so.LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR;
            so.GraphOptimizationLevel = OrtTypes.ToOrt(options.Optimization);
            so.IntraOpNumThreads = options.IntraOpThreads > 0 ? options.IntraOpThreads : DefaultIntraOpThreads;
            so.InterOpNumThreads = Math.Max(0, options.InterOpThreads);
            so.ExecutionMode = options.InterOpThreads > 1 ? ExecutionMode.ORT_PARALLEL : ExecutionMode.ORT_SEQUENTIAL;
            foreach (var (name, value) in options.FixedDimensions)
                so.AddFreeDimensionOverrideByName(name, value);
            if (options.Fallback == FallbackPolicy.Strict && ProviderName != "CPUExecutionProvider")
                so.AddSessionConfigEntry("session.disable_cpu_ep_fallback", "1");
            AppendExecutionProvider(so, options);
            return so;
        }
        catch
        {
            so.Dispose();
            throw;
        }
    }

    /// <summary>Creates a session, turning ONNX Runtime's errors into ones that name the model and say what to do.</summary>
    protected InferenceSession CreateSession(ModelSource model, SessionOptions options)
    {
        try
        {
            return model.FilePath is not null
                ? new InferenceSession(model.FilePath, options)
                : new InferenceSession(model.GetBytes(), options);
        }
        catch (OnnxRuntimeException e)
        {
            throw Describe(model, e);
        }
    }

    private TesseraException Describe(ModelSource model, OnnxRuntimeException e)
    {
        var m = e.Message;
        if (m.Contains("INVALID_PROTOBUF") || m.Contains("Protobuf parsing failed"))
            return new ModelLoadException(model.DisplayName, "is not a valid ONNX file (it may be truncated or not a model at all). Re-export or re-download it.", e);
        if (m.Contains("NO_SUCHFILE") || m.Contains("No such file"))
            return new ModelLoadException(model.DisplayName, "does not exist or refers to an external data file that does not.", e);
        if (m.Contains("fallback to CPU EP has been explicitly disabled"))
            return new FallbackNotAllowedException(Info.Id, model.DisplayName, [], FirstLine(m));
        if (m.Contains("NOT_IMPLEMENTED") || m.Contains("Could not find an implementation"))
            return Info.Id.Kind == "cpu"
                ? new ModelLoadException(model.DisplayName, $"uses an operator that {Info.Id} ({ProviderName}) cannot run: {FirstLine(m)}", e)
                : new FallbackNotAllowedException(Info.Id, model.DisplayName, [], FirstLine(m));
        return new ModelLoadException(model.DisplayName, $"could not be compiled for {Info.Id}: {FirstLine(m)}", e);
    }

    private static string FirstLine(string s) => s.Split('\n')[0].Trim();
}
