using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;

namespace Tessera.Engine;

/// <summary>
/// Which native onnxruntime the process uses. The host ships the NuGet CPU build; an operator with a CUDA or CANN
/// build points <c>$TESSERA_ONNXRUNTIME</c> (or <c>onnxRuntimePath</c> in the engine configuration) at its
/// libonnxruntime.so, and the host loads that one instead, once, before anything else touches ONNX Runtime. Plugins
/// share it (one native onnxruntime per process).
/// </summary>
public static class NativeOnnxRuntime
{
    public const string Variable = "TESSERA_ONNXRUNTIME";
    private static readonly object Gate = new();
    private static string? _chosen;

    /// <summary>The library chosen with <see cref="Use"/>, or null for the packaged one.</summary>
    public static string? Chosen => _chosen;

    /// <summary>
    /// Makes ONNX Runtime's managed package load <paramref name="path"/>. Must run before the first ONNX Runtime call;
    /// asking for a different library later is an error that says so.
    /// </summary>
    public static void Use(string path)
    {
        path = Path.GetFullPath(path);
        lock (Gate)
        {
            if (_chosen == path) return;
            if (_chosen is not null)
                throw new InvalidOperationException($"This process already uses the native onnxruntime {_chosen}; it cannot switch to {path}. Run a separate process.");
            if (!File.Exists(path))
                throw new FileNotFoundException($"{Variable} / onnxRuntimePath is '{path}', which does not exist. Point it at a libonnxruntime.so (e.g. a CUDA or CANN build).", path);
            Tessera.Abstractions.InputFiles.RequireRegularFile(path, $"{Variable} / onnxRuntimePath", Tessera.Abstractions.InputFiles.MaxOnnxBytes);
            // Load it now, so a wrong file is one clear error here rather than a crash inside the first ONNX Runtime call.
            if (!NativeLibrary.TryLoad(path, out var handle))
                throw new InvalidDataException($"{Variable} / onnxRuntimePath is '{path}', which is not a loadable shared library for this machine. Point it at a libonnxruntime.so (e.g. a CUDA or CANN build).");
            if (!NativeLibrary.TryGetExport(handle, "OrtGetApiBase", out _))
            {
                NativeLibrary.Free(handle);
                throw new InvalidDataException($"{Variable} / onnxRuntimePath is '{path}', a shared library without OrtGetApiBase, so it is not ONNX Runtime. Point it at a libonnxruntime.so.");
            }
            try
            {
                NativeLibrary.SetDllImportResolver(typeof(OrtEnv).Assembly, (name, _, _) =>
                    name is "onnxruntime" or "libonnxruntime" or "libonnxruntime.so" ? handle : IntPtr.Zero);
            }
            catch (InvalidOperationException)
            {
                throw new InvalidOperationException($"ONNX Runtime's library resolver was already set in this process; {Variable} must be applied before ONNX Runtime is first used.");
            }
            _chosen = path;
        }
    }

    /// <summary>Applies <see cref="EngineOptions.OnnxRuntimePath"/>, else <c>$TESSERA_ONNXRUNTIME</c>, when either is set.</summary>
    public static void Apply(EngineOptions options)
    {
        var path = options.OnnxRuntimePath ?? Environment.GetEnvironmentVariable(Variable);
        if (!string.IsNullOrEmpty(path)) Use(path);
    }
}
