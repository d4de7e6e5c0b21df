using Microsoft.ML.OnnxRuntime;
using Tessera.Abstractions;
using Tessera.Plugins.OnnxRuntime;

namespace Tessera.Plugins.Cpu;

/// <summary>One CPU device: ONNX Runtime's CPU execution provider with its own intra-op thread pool size.</summary>
public sealed class CpuDevice(DeviceInfo info, int threads, OptimizedGraphCache cache, string hardwareFingerprint, bool spin = true) : OrtDevice(info, cache)
{
    /// <summary>CPU model and feature flags: optimized graphs may use kernels (NCHWc layouts) specific to them.</summary>
    protected override string HardwareFingerprint => hardwareFingerprint;

    protected override string ProviderName => "CPUExecutionProvider";

    protected override int DefaultIntraOpThreads => threads;

    protected override IReadOnlyCollection<string> AllowedDeviceSettings => ["arena"];

    protected override void AppendExecutionProvider(SessionOptions options, CompileOptions compile)
    {
        // The CPU EP is always present; the memory arena and thread spinning are configurable.
        if (!spin) options.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
        if (compile.DeviceSettings.TryGetValue("arena", out var arena))
            options.EnableCpuMemArena = arena switch
            {
                "on" or "true" => true,
                "off" or "false" => false,
                _ => throw new ArgumentException($"Device setting 'arena' is '{arena}'; allowed values: on, off."),
            };
    }
}
