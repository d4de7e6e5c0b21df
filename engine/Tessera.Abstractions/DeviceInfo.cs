namespace Tessera.Abstractions;

/// <summary>What a device says about itself.</summary>
/// <param name="Id">Name used to address the device.</param>
/// <param name="Name">Human-readable name (e.g. the CPU or GPU model).</param>
/// <param name="IsAvailable">Whether graphs can be compiled and run on it now.</param>
/// <param name="UnavailableReason">When not available: what is missing and what to do. Null otherwise.</param>
/// <param name="TotalMemoryBytes">Device memory in bytes, when known.</param>
/// <param name="FreeMemoryBytes">Free device memory in bytes, when known.</param>
/// <param name="Capabilities">Flags from <see cref="DeviceCapabilities"/>: <c>fp16</c>, <c>bf16</c>, <c>int8</c>, <c>device-resident-tensors</c>, <c>compiled-model-cache</c>.</param>
/// <param name="PreferenceScore">Higher is preferred by <c>auto</c> placement; the CPU reference scores 10.</param>
/// <param name="Properties">Free-form facts for display (driver version, compute capability, thread counts).</param>
public sealed record DeviceInfo(
    DeviceId Id,
    string Name,
    bool IsAvailable,
    string? UnavailableReason,
    long? TotalMemoryBytes,
    long? FreeMemoryBytes,
    IReadOnlySet<string> Capabilities,
    int PreferenceScore,
    IReadOnlyDictionary<string, string> Properties);

/// <summary>Well-known capability flags.</summary>
public static class DeviceCapabilities
{
    public const string Float16 = "fp16";
    public const string BFloat16 = "bf16";
    public const string Int8 = "int8";
    /// <summary>Run outputs stay in device memory and can be fed back as inputs without a host copy.</summary>
    public const string DeviceResidentTensors = "device-resident-tensors";
    /// <summary>Optimized graphs are cached on disk between processes.</summary>
    public const string CompiledModelCache = "compiled-model-cache";
}
