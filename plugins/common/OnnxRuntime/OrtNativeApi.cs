using System.Reflection;
using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using Tessera.Abstractions;

namespace Tessera.Plugins.OnnxRuntime;

/// <summary>ONNX Runtime's <c>OrtErrorCode</c>.</summary>
public enum OrtStatusCode
{
    Ok = 0, Fail = 1, InvalidArgument = 2, NoSuchFile = 3, NoModel = 4, EngineError = 5, RuntimeException = 6,
    InvalidProtobuf = 7, ModelLoaded = 8, NotImplemented = 9, InvalidGraph = 10, EpFail = 11,
}

/// <summary>A call into ONNX Runtime's C API returned an error status.</summary>
public class OrtNativeException(string function, OrtStatusCode code, string message)
    : TesseraException($"ONNX Runtime's {function} failed ({code}): {message}")
{
    public string Function { get; } = function;
    public OrtStatusCode Code { get; } = code;
    public string NativeMessage { get; } = message;
}

/// <summary>
/// The native onnxruntime has no such execution provider: a build without it (e.g. the NuGet CPU package; ONNX Runtime
/// answers "... is not enabled in this build"), or its provider library libonnxruntime_providers_&lt;ep&gt;.so is missing.
/// </summary>
public sealed class ProviderNotEnabledException(string function, string provider, OrtStatusCode code, string message)
    : OrtNativeException(function, code, message)
{
    public string Provider { get; } = provider;
}

/// <summary>
/// ONNX Runtime's C API function table (<c>OrtApi</c>), for the entry points the managed package does not wrap.
/// It is taken from the same native library the managed package uses (resolved through that assembly), so there is
/// one onnxruntime per process. Slots are the positions of the functions in <c>OrtApi</c>, which ONNX Runtime keeps
/// stable across versions (new functions are only appended).
/// </summary>
public static unsafe class OrtNativeApi
{
    /// <summary>Oldest C API version that has every slot used here (the CANN functions arrived in 1.13).</summary>
    public const uint ApiVersion = 13;

    public const int GetErrorCodeSlot = 1, GetErrorMessageSlot = 2, ReleaseStatusSlot = 93;
    public const int SessionOptionsAppendExecutionProvider_CANN = 220, CreateCANNProviderOptions = 221,
        UpdateCANNProviderOptions = 222, GetCANNProviderOptionsAsString = 223, ReleaseCANNProviderOptions = 224;

    private static readonly Lazy<(IntPtr Library, IntPtr Api, string Version)> Table = new(Load);

    /// <summary>The native library's handle (the same one the managed package loaded).</summary>
    public static IntPtr Library => Table.Value.Library;

    /// <summary><c>OrtGetApiBase()->GetVersionString()</c> of the loaded native library.</summary>
    public static string NativeVersion => Table.Value.Version;

    /// <summary>The managed package's version (Microsoft.ML.OnnxRuntime assembly), e.g. 1.31.1.</summary>
    public static Version ManagedVersion
    {
        get
        {
            var info = typeof(OrtEnv).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion;
            return info is not null && Version.TryParse(info.Split('+', '-')[0], out var v) ? v : typeof(OrtEnv).Assembly.GetName().Version!;
        }
    }

    /// <summary>A function pointer from the table.</summary>
    public static IntPtr Function(int slot) => ((IntPtr*)Table.Value.Api)[slot];

    private static (IntPtr, IntPtr, string) Load()
    {
        // Make sure the managed package has loaded its native library, then take that very library. Resolving
        // "onnxruntime" again by name would bypass a DllImport resolver (the host's TESSERA_ONNXRUNTIME or a plugin's
        // installed GPU build) and map the packaged CPU build as a second copy; so ask the managed package's own
        // P/Invoke for OrtGetApiBase, and find the library that address lives in.
        _ = OrtEnv.Instance();
        var library = LibraryOfManagedPackage() ?? NativeLibrary.Load("onnxruntime", typeof(OrtEnv).Assembly, null);
        var (api, version) = ReadApiBase(library, "onnxruntime");
        return (library, api, version);
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct DlInfo
    {
        public IntPtr FileName, BaseAddress, SymbolName, SymbolAddress;
    }

    [DllImport("libc", EntryPoint = "dladdr")]
    private static extern int DlAddr(IntPtr address, out DlInfo info);

    /// <summary>Path of the native library the managed package's P/Invokes are bound to, or null where that cannot be told.</summary>
    public static string? ManagedPackageLibraryPath()
    {
        try
        {
            var method = typeof(OrtEnv).Assembly.GetType("Microsoft.ML.OnnxRuntime.NativeMethods")
                ?.GetMethod("OrtGetApiBase", BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic, Type.EmptyTypes);
            // Older packages return OrtApiBase* (IntPtr); newer ones `ref OrtApiBase`, which reflection hands back as the
            // struct: its GetApi is a function inside the library. Either address tells which file it is.
            var address = method?.Invoke(null, null) switch
            {
                IntPtr p => p,
                { } apiBase when apiBase.GetType().GetField("GetApi")?.GetValue(apiBase) is IntPtr getApi => getApi,
                _ => IntPtr.Zero,
            };
            if (address == IntPtr.Zero || DlAddr(address, out var info) == 0 || info.FileName == IntPtr.Zero) return null;
            return Marshal.PtrToStringUTF8(info.FileName);
        }
        catch (Exception e) when (e is TargetInvocationException or DllNotFoundException or EntryPointNotFoundException or MemberAccessException or NotSupportedException)
        {
            return null;
        }
    }

    private static IntPtr? LibraryOfManagedPackage() =>
        ManagedPackageLibraryPath() is { Length: > 0 } path && NativeLibrary.TryLoad(path, out var handle) ? handle : null;

    /// <summary>Reads <c>OrtGetApiBase</c> of a native onnxruntime: its API table and version string.</summary>
    public static (IntPtr Api, string Version) ReadApiBase(IntPtr library, string description)
    {
        if (!NativeLibrary.TryGetExport(library, "OrtGetApiBase", out var getApiBase))
            throw new InvalidOperationException($"{description} has no OrtGetApiBase export; it is not an ONNX Runtime library.");
        var apiBase = ((delegate* unmanaged<IntPtr>)getApiBase)();
        var getApi = ((IntPtr*)apiBase)[0];
        var getVersion = ((IntPtr*)apiBase)[1];
        var version = Marshal.PtrToStringUTF8(((delegate* unmanaged<IntPtr>)getVersion)()) ?? "";
        var api = ((delegate* unmanaged<uint, IntPtr>)getApi)(ApiVersion);
        if (api == IntPtr.Zero)
            throw new InvalidOperationException($"{description} (ONNX Runtime {version}) does not provide C API version {ApiVersion}; use ONNX Runtime 1.13 or newer.");
        return (api, version);
    }

    /// <summary>
    /// Turns an <c>OrtStatus*</c> into nothing (success) or an exception naming the function; releases the status.
    /// "not enabled in this build" becomes <see cref="ProviderNotEnabledException"/>.
    /// </summary>
    public static void Check(IntPtr status, string function, string? provider = null)
    {
        if (status == IntPtr.Zero) return;
        var code = (OrtStatusCode)((delegate* unmanaged<IntPtr, int>)Function(GetErrorCodeSlot))(status);
        var message = Marshal.PtrToStringUTF8(((delegate* unmanaged<IntPtr, IntPtr>)Function(GetErrorMessageSlot))(status)) ?? "";
        ((delegate* unmanaged<IntPtr, void>)Function(ReleaseStatusSlot))(status);
        // Two ways ONNX Runtime says a provider is absent: compiled out ("... is not enabled in this build"), or its
        // shared library (libonnxruntime_providers_<ep>.so) is not installed beside libonnxruntime.so.
        if (provider is not null && (message.Contains("not enabled in this build", StringComparison.OrdinalIgnoreCase)
                                     || (message.Contains("Failed to load library", StringComparison.Ordinal) && message.Contains("libonnxruntime_providers_", StringComparison.Ordinal))))
            throw new ProviderNotEnabledException(function, provider, code, message.Trim());
        throw new OrtNativeException(function, code, message.Trim());
    }

    /// <summary>Whether the loaded native onnxruntime lists <paramref name="provider"/> (e.g. CUDAExecutionProvider).</summary>
    public static bool HasProvider(string provider) => OrtEnv.Instance().GetAvailableProviders().Contains(provider);
}
