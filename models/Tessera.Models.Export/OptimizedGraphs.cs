using Tessera.Abstractions;
using Tessera.Engine;

namespace Tessera.Models.Export;

/// <summary>
/// Writes an exported graph as each named device runs it (its plugin's optimized graph, from the compiled-model
/// cache) beside the export: what <c>tessera export --optimize-for</c> does. The files are hardware-specific.
/// </summary>
public static class OptimizedGraphs
{
    public sealed record Written(string Path, long Bytes, DeviceId Device);

    /// <param name="modelPath">The exported .onnx.</param>
    /// <param name="outDir">Where <c>{stage}.{kind}{index}.onnx</c> goes.</param>
    public static IReadOnlyList<Written> WriteFor(string modelPath, string outDir, string stage, IEnumerable<string> devices, EngineOptions? engineOptions = null)
    {
        using var engine = new TesseraEngine(engineOptions ?? new EngineOptions());
        var written = new List<Written>();
        foreach (var device in devices)
        {
            // Compile through the device with its optimized-graph cache; the cache entry is that device's graph.
            using var compiled = engine.Compile(ModelSource.FromFile(modelPath), device,
                new CompileOptions { Optimization = OptimizationLevel.All, UseCompiledModelCache = true });
            var cached = compiled.Model.Report.CachePath
                ?? throw new NotSupportedException($"Device {compiled.Model.Device} keeps no optimized graph on disk, so there is nothing to write for --optimize-for {device}.");
            var target = Path.Combine(outDir, $"{stage}.{compiled.Model.Device.Kind}{compiled.Model.Device.Index}.onnx");
            File.Copy(cached, target, overwrite: true);
            written.Add(new Written(target, new FileInfo(target).Length, compiled.Model.Device));
        }
        return written;
    }
}
