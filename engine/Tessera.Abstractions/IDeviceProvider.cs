namespace Tessera.Abstractions;

/// <summary>
/// Enumerates the devices of one kind. Register implementations as singletons of this interface.
/// </summary>
public interface IDeviceProvider
{
    /// <summary>The device kind this provider serves (e.g. <c>cpu</c>); devices are named <c>kind:index</c>.</summary>
    string Kind { get; }

    /// <summary>
    /// Lists the devices. Answers rather than fails: when the hardware, driver or runtime is missing, return
    /// a device with <see cref="DeviceInfo.IsAvailable"/> false and a reason that says what is missing and what
    /// to do, instead of throwing. Called once per host; the result is cached.
    /// </summary>
    IReadOnlyList<IDevice> EnumerateDevices();
}
