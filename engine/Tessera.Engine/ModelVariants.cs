using Tessera.Abstractions;

namespace Tessera.Engine;

/// <summary>
/// One model with precision variants — an int8 or fp16 export of the same graph — each keyed by the
/// <see cref="DeviceCapabilities"/> flag a device must declare to be given it. The host reads the placed device's
/// <see cref="DeviceInfo.Capabilities"/> and compiles the first variant in <see cref="Preference"/> order the device
/// declares (smallest weights first), else <see cref="Default"/>.
/// </summary>
public sealed record ModelVariants
{
    /// <summary>Capabilities that select a variant, in the order they are preferred.</summary>
    public static readonly IReadOnlyList<string> Preference = [DeviceCapabilities.Int8, DeviceCapabilities.Float16, DeviceCapabilities.BFloat16];

    public ModelVariants(ModelSource defaultModel, IReadOnlyDictionary<string, ModelSource>? byCapability = null)
    {
        Default = defaultModel;
        ByCapability = byCapability ?? new Dictionary<string, ModelSource>();
        foreach (var key in ByCapability.Keys)
            if (!Preference.Contains(key))
                throw new ArgumentException($"Model '{defaultModel.DisplayName}' has a variant for '{key}', which is not a capability that selects variants; use one of {string.Join(", ", Preference)}.", nameof(byCapability));
    }

    /// <summary>The model every device can be given (fp32).</summary>
    public ModelSource Default { get; }

    /// <summary>Variants by capability flag (<c>int8</c>, <c>fp16</c>, <c>bf16</c>).</summary>
    public IReadOnlyDictionary<string, ModelSource> ByCapability { get; }

    /// <summary>The variant for a device, and the capability that chose it (null for the default).</summary>
    public (ModelSource Model, string? Capability) For(DeviceInfo device)
    {
        foreach (var capability in Preference)
            if (device.Capabilities.Contains(capability) && ByCapability.TryGetValue(capability, out var variant))
                return (variant, capability);
        return (Default, null);
    }
}
