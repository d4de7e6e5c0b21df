using System.Runtime.InteropServices;
using System.Text;
using Microsoft.ML.OnnxRuntime;
using Tessera.Plugins.OnnxRuntime;

namespace Tessera.Plugins.Ascend;

/// <summary>
/// <c>OrtCANNProviderOptions</c> through ONNX Runtime's C function table: the C# API has no CANN wrapper and its
/// generic <c>AppendExecutionProvider("CANN", …)</c> is refused by the native side. In an onnxruntime built without
/// CANN every call returns "CANN execution provider is not enabled in this build", raised as
/// <see cref="ProviderNotEnabledException"/>.
/// </summary>
public sealed unsafe class CannProviderOptions : IDisposable
{
    public const string Provider = "CANNExecutionProvider";
    private IntPtr _options;

    private CannProviderOptions(IntPtr options) => _options = options;

    /// <summary><c>CreateCANNProviderOptions</c>: the provider's defaults.</summary>
    public static CannProviderOptions Create()
    {
        IntPtr options = IntPtr.Zero;
        var create = (delegate* unmanaged<IntPtr*, IntPtr>)OrtNativeApi.Function(OrtNativeApi.CreateCANNProviderOptions);
        OrtNativeApi.Check(create(&options), "CreateCANNProviderOptions", Provider);
        return new CannProviderOptions(options);
    }

    /// <summary><c>UpdateCANNProviderOptions</c> with string keys and values (validated beforehand by the plugin).</summary>
    public void Update(IReadOnlyDictionary<string, string> values) => Update(_options, values);

    /// <summary>The same call on a raw pointer (tests reach the native side with it even where Create cannot succeed).</summary>
    public static void Update(IntPtr options, IReadOnlyDictionary<string, string> values)
    {
        var keys = values.Keys.ToArray();
        var handles = new List<IntPtr>();
        try
        {
            var k = stackalloc IntPtr[Math.Max(1, keys.Length)];
            var v = stackalloc IntPtr[Math.Max(1, keys.Length)];
            for (int i = 0; i < keys.Length; i++)
            {
                k[i] = Utf8(keys[i], handles);
                v[i] = Utf8(values[keys[i]], handles);
            }
            var update = (delegate* unmanaged<IntPtr, IntPtr*, IntPtr*, nuint, IntPtr>)OrtNativeApi.Function(OrtNativeApi.UpdateCANNProviderOptions);
            OrtNativeApi.Check(update(options, k, v, (nuint)keys.Length), "UpdateCANNProviderOptions", Provider);
        }
        finally
        {
            foreach (var h in handles) Marshal.FreeHGlobal(h);
        }
    }

    /// <summary><c>SessionOptionsAppendExecutionProvider_CANN</c>: adds the CANN EP with these options to a session.</summary>
    public void AppendTo(SessionOptions session) => AppendTo(session, _options);

    public static void AppendTo(SessionOptions session, IntPtr options)
    {
        var append = (delegate* unmanaged<IntPtr, IntPtr, IntPtr>)OrtNativeApi.Function(OrtNativeApi.SessionOptionsAppendExecutionProvider_CANN);
        bool added = false;
        session.DangerousAddRef(ref added);
        try
        {
            OrtNativeApi.Check(append(session.DangerousGetHandle(), options), "SessionOptionsAppendExecutionProvider_CANN", Provider);
        }
        finally
        {
            if (added) session.DangerousRelease();
        }
    }

    public void Dispose()
    {
        if (_options == IntPtr.Zero) return;
        ((delegate* unmanaged<IntPtr, void>)OrtNativeApi.Function(OrtNativeApi.ReleaseCANNProviderOptions))(_options);
        _options = IntPtr.Zero;
    }

    private static IntPtr Utf8(string s, List<IntPtr> handles)
    {
        var bytes = Encoding.UTF8.GetBytes(s + "\0");
        var p = Marshal.AllocHGlobal(bytes.Length);
        handles.Add(p);
        Marshal.Copy(bytes, 0, p, bytes.Length);
        return p;
    }
}

/// <summary>
/// Device discovery through the Ascend Computing Language runtime (<c>libascendcl.so</c>, part of the CANN toolkit):
/// <c>aclInit</c>, <c>aclrtGetDeviceCount</c>, <c>aclrtGetSocName</c>, <c>aclrtSetDevice</c> + <c>aclrtGetMemInfo</c>.
/// </summary>
public static unsafe class AscendCl
{
    public sealed record Npu(int Index, string SocName, long? TotalBytes, long? FreeBytes);

    /// <summary>Where the CANN toolkit puts the library when LD_LIBRARY_PATH does not say.</summary>
    public static IEnumerable<string> Candidates(string? configured)
    {
        if (!string.IsNullOrEmpty(configured)) { yield return configured; yield break; }
        yield return "libascendcl.so";
        foreach (var home in new[] { Environment.GetEnvironmentVariable("ASCEND_TOOLKIT_HOME"), Environment.GetEnvironmentVariable("ASCEND_HOME_PATH"), "/usr/local/Ascend/ascend-toolkit/latest" })
            if (!string.IsNullOrEmpty(home)) yield return Path.Combine(home, "lib64", "libascendcl.so");
    }

    /// <summary>The NPUs, or the reason there are none (precise: which library, which call, which error code).</summary>
    public static (IReadOnlyList<Npu> Devices, string? Reason) Probe(string? libraryPath)
    {
        IntPtr lib = IntPtr.Zero;
        var tried = Candidates(libraryPath).ToList();
        foreach (var candidate in tried)
            if (NativeLibrary.TryLoad(candidate, out lib)) break;
        if (lib == IntPtr.Zero)
            return ([], $"no CANN runtime: libascendcl.so was not found (tried {string.Join(", ", tried)}). Install the CANN toolkit and run its set_env.sh, or set plugins.ascend.acl_library.");

        IntPtr Export(string name) => NativeLibrary.TryGetExport(lib, name, out var f) ? f : throw new EntryPointNotFoundException($"libascendcl.so has no {name}");
        try
        {
            int rc = ((delegate* unmanaged<IntPtr, int>)Export("aclInit"))(IntPtr.Zero);
            const int AlreadyInitialized = 100002;
            if (rc != 0 && rc != AlreadyInitialized)
                return ([], $"the CANN runtime did not start: aclInit returned error {rc}. Check the driver with npu-smi info.");
            uint count = 0;
            rc = ((delegate* unmanaged<uint*, int>)Export("aclrtGetDeviceCount"))(&count);
            if (rc != 0) return ([], $"no Ascend NPU: aclrtGetDeviceCount returned error {rc} (is the NPU driver loaded? check npu-smi info).");
            if (count == 0) return ([], "no Ascend NPU: the CANN runtime found 0 devices.");
            var soc = Marshal.PtrToStringUTF8(((delegate* unmanaged<IntPtr>)Export("aclrtGetSocName"))()) ?? "Ascend NPU";
            var devices = new List<Npu>();
            for (int i = 0; i < count; i++)
            {
                long? total = null, free = null;
                if (((delegate* unmanaged<int, int>)Export("aclrtSetDevice"))(i) == 0)
                {
                    nuint f = 0, t = 0;
                    const int HbmMemory = 1; // ACL_HBM_MEM
                    if (((delegate* unmanaged<int, nuint*, nuint*, int>)Export("aclrtGetMemInfo"))(HbmMemory, &f, &t) == 0) (total, free) = ((long)t, (long)f);
                    ((delegate* unmanaged<int, int>)Export("aclrtResetDevice"))(i);
                }
                devices.Add(new Npu(i, soc, total, free));
            }
            return (devices, null);
        }
        catch (EntryPointNotFoundException e)
        {
            return ([], $"the CANN runtime is incomplete: {e.Message}.");
        }
    }
}
