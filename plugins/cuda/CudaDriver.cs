using System.Runtime.InteropServices;
using System.Text;

namespace Tessera.Plugins.Cuda;

/// <summary>
/// Device discovery through the CUDA driver API (<c>libcuda.so.1</c>, installed with the NVIDIA driver):
/// <c>cuInit</c>, <c>cuDriverGetVersion</c>, <c>cuDeviceGetCount</c>, <c>cuDeviceGet</c>, <c>cuDeviceGetName</c>,
/// <c>cuDeviceTotalMem_v2</c>, <c>cuDeviceGetAttribute</c> (compute capability). No CUDA toolkit is needed.
/// </summary>
public static unsafe class CudaDriver
{
    public sealed record Gpu(int Index, string Name, long TotalBytes, int Major, int Minor, string Uuid);

    public sealed record ProbeResult(IReadOnlyList<Gpu> Devices, int? DriverVersion, string? Reason);

    private const int CUDA_ERROR_NO_DEVICE = 100, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;

    public static IEnumerable<string> Candidates(string? configured) =>
        string.IsNullOrEmpty(configured) ? ["libcuda.so.1", "libcuda.so", "/usr/lib/x86_64-linux-gnu/libcuda.so.1", "/usr/lib64/libcuda.so.1", "/usr/lib/wsl/lib/libcuda.so.1"] : [configured];

    /// <summary>The GPUs, or the precise reason there are none: no driver library, the driver refusing, or no device.</summary>
    public static ProbeResult Probe(string? libraryPath = null)
    {
        IntPtr lib = IntPtr.Zero;
        var tried = Candidates(libraryPath).ToList();
        foreach (var c in tried)
            if (NativeLibrary.TryLoad(c, out lib)) break;
        if (lib == IntPtr.Zero)
            return new([], null, $"no NVIDIA driver: libcuda.so.1 was not found (tried {string.Join(", ", tried)}). Install the NVIDIA driver, or set plugins.cuda.driver_library.");

        IntPtr Export(string name) => NativeLibrary.TryGetExport(lib, name, out var f) ? f : throw new EntryPointNotFoundException($"libcuda has no {name}");
        try
        {
            int rc = ((delegate* unmanaged<uint, int>)Export("cuInit"))(0);
            if (rc == CUDA_ERROR_NO_DEVICE) return new([], null, "no CUDA device: the NVIDIA driver is installed but found no GPU (cuInit: CUDA_ERROR_NO_DEVICE).");
            if (rc != 0) return new([], null, $"the NVIDIA driver did not start: cuInit returned {ErrorName(lib, rc)}. Check nvidia-smi.");
            int driver = 0;
            ((delegate* unmanaged<int*, int>)Export("cuDriverGetVersion"))(&driver);
            int count = 0;
            rc = ((delegate* unmanaged<int*, int>)Export("cuDeviceGetCount"))(&count);
            if (rc != 0) return new([], driver, $"the NVIDIA driver could not count devices: cuDeviceGetCount returned {ErrorName(lib, rc)}.");
            if (count == 0) return new([], driver, "no CUDA device: the NVIDIA driver found 0 GPUs.");
            var gpus = new List<Gpu>();
            var name = stackalloc byte[256];
            var uuid = stackalloc byte[16];
            for (int i = 0; i < count; i++)
            {
                int dev;
                Check(lib, ((delegate* unmanaged<int*, int, int>)Export("cuDeviceGet"))(&dev, i), "cuDeviceGet");
                Check(lib, ((delegate* unmanaged<byte*, int, int, int>)Export("cuDeviceGetName"))(name, 256, dev), "cuDeviceGetName");
                nuint total;
                Check(lib, ((delegate* unmanaged<nuint*, int, int>)Export("cuDeviceTotalMem_v2"))(&total, dev), "cuDeviceTotalMem_v2");
                int major, minor;
                Check(lib, ((delegate* unmanaged<int*, int, int, int>)Export("cuDeviceGetAttribute"))(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev), "cuDeviceGetAttribute");
                Check(lib, ((delegate* unmanaged<int*, int, int, int>)Export("cuDeviceGetAttribute"))(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev), "cuDeviceGetAttribute");
                string id = "";
                if (NativeLibrary.TryGetExport(lib, "cuDeviceGetUuid", out var getUuid) && ((delegate* unmanaged<byte*, int, int>)getUuid)(uuid, dev) == 0)
                    id = "GPU-" + Convert.ToHexString(new ReadOnlySpan<byte>(uuid, 16)).ToLowerInvariant().Insert(20, "-").Insert(16, "-").Insert(12, "-").Insert(8, "-");
                gpus.Add(new Gpu(i, Marshal.PtrToStringUTF8((IntPtr)name) ?? $"CUDA device {i}", (long)total, major, minor, id));
            }
            return new(gpus, driver, null);
        }
        catch (EntryPointNotFoundException e)
        {
            return new([], null, $"the NVIDIA driver library is incomplete: {e.Message}.");
        }
        catch (InvalidOperationException e)
        {
            return new([], null, e.Message);
        }
    }

    private static void Check(IntPtr lib, int rc, string function)
    {
        if (rc != 0) throw new InvalidOperationException($"the NVIDIA driver failed in {function}: {ErrorName(lib, rc)}.");
    }

    private static string ErrorName(IntPtr lib, int rc)
    {
        if (NativeLibrary.TryGetExport(lib, "cuGetErrorName", out var f))
        {
            IntPtr s;
            if (((delegate* unmanaged<int, IntPtr*, int>)f)(rc, &s) == 0 && s != IntPtr.Zero) return $"{Marshal.PtrToStringUTF8(s)} ({rc})";
        }
        return $"error {rc}";
    }

    /// <summary>"12.4" from the driver's integer version 12040.</summary>
    public static string FormatVersion(int version) => $"{version / 1000}.{version % 1000 / 10}";
}
