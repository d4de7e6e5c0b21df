using Tessera.Models.Export;
using Tessera.Pipeline;

namespace Tessera.Tools.Training;

/// <summary>`tessera package`: <see cref="ModelPackageBuilder"/> with each stage's parity and the size printed.</summary>
public static class PackageBuilder
{
    public static int Run(string vqRun, string arRun, string decoderRun, string outDir, string name, SamplingDefaults? sampling = null)
    {
        var build = ModelPackageBuilder.Build(vqRun, arRun, decoderRun, outDir, name, sampling, Console.Error);
        foreach (var r in build.Stages)
            Console.WriteLine($"{r.Name,-8} {r.Bytes / 1048576.0,7:F2} MiB  parity {(r.Passed ? "ok" : "FAILED")}  (worst abs error {r.Parity.Max(p => p.MaxAbsError):E2})");
        if (!build.Written)
        {
            var failed = build.Stages.First(r => !r.Passed);
            throw new InvalidDataException($"The {failed.Name} export failed parity (see {failed.ReportPath}); the package was not written.");
        }
        Console.WriteLine($"wrote package {outDir} ({build.Bytes / 1048576.0:F1} MiB)");
        return 0;
    }
}
