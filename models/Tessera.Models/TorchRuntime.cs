using TorchSharp;

namespace Tessera.Models;

/// <summary>Facts about the TorchSharp runtime in this process, for diagnostics.</summary>
public static class TorchRuntime
{
    /// <summary>Loads libtorch (first use) and describes it, e.g. "TorchSharp 0.107.0, libtorch CPU, 2 threads".</summary>
    public static string Describe()
    {
        var version = typeof(torch).Assembly.GetName().Version;
        return $"TorchSharp {version}, libtorch {(torch.cuda.is_available() ? "CUDA" : "CPU")}, {torch.get_num_threads()} threads";
    }
}
