namespace Tessera.Abstractions;

/// <summary>What a device says about itself.</summary>
/// <param name="Id">Name used to address the device.</param>
/// <param name="Name">Human-readable name (e.g. the CPU or GPU model).</param>
/// <param name="IsAvailable">Whether graphs can be compiled and run on it now.</param>
/// <param name="UnavailableReason">When not available: what is missing and what to do. Null otherwise.</param>
/// <param name="TotalMemoryBytes">Device memory in bytes, when known.</param>
/// <param name="FreeMemoryBytes">Free device memory in bytes, when known.</param>
/// <param name="Capabilities">Flags from <see cref="DeviceCapabilities"/> only (the host acts on them, and verify fails any
/// other string): <c>fp16</c>, <c>bf16</c>, <c>int8</c>, <c>device-resident-tensors</c>, <c>compiled-model-cache</c>. Other facts go in <paramref name="Properties"/>.</param>
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

/// <summary>
/// The capability flags a device may declare, each read by the host: <see cref="Int8"/>, <see cref="Float16"/> and
/// <see cref="BFloat16"/> choose a model's precision variant (int8 first; the engine's ModelVariants), and verify checks
/// <see cref="CompiledModelCache"/>. A device declares only flags that hold for it.
/// </summary>
public static class DeviceCapabilities
{
    /// <summary>Runs fp16 graphs natively: given a package's fp16 variant when it has no int8 one.</summary>
    public const string Float16 = "fp16";
    /// <summary>Runs bf16 graphs natively: given a package's bf16 variant when it has neither int8 nor fp16 ones.</summary>
    public const string BFloat16 = "bf16";
    /// <summary>Runs int8 / n-bit quantized graphs (<c>com.microsoft.MatMulNBits</c>): given a package's int8 variant first.</summary>
    public const string Int8 = "int8";
    /// <summary>Run outputs stay in device memory and can be fed back as inputs without a host copy.</summary>
    public const string DeviceResidentTensors = "device-resident-tensors";
    /// <summary>Optimized graphs are cached on disk between processes (verify checks a second compile reports FromCache).</summary>
    public const string CompiledModelCache = "compiled-model-cache";
}
