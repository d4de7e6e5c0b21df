using Tessera.Export;

namespace Tessera.Cli.Training;

/// <summary>Runs an export and prints the parity table; exits 1 when parity fails.</summary>
public static class ExportRunner
{
    public static int Run(string stage, string checkpoint, string outDir, bool externalData, StageExporter.Variant[] variants)
    {
        if (!File.Exists(checkpoint) && !Directory.Exists(checkpoint))
            throw new FileNotFoundException($"Checkpoint {checkpoint} does not exist (give a .tsr file or a training run folder).");
        var r = StageExporter.Export(stage, checkpoint, outDir, externalData, Console.Error, variants);
        bool ok = true;
        foreach (var variant in r.Variants.Prepend(r))
        {
            Console.WriteLine($"{"case",-22}{"output",-28}{"max abs err",13}{"max rel err",13}{"tolerance",11}  result   [{variant.Stage}]");
            foreach (var p in variant.Parity)
                Console.WriteLine($"{p.Case,-22}{p.Output,-28}{p.MaxAbsError,13:E2}{p.MaxRelError,13:E2}{p.Tolerance,11:G3}  {(p.Passed ? "ok" : "FAILED")}");
            Console.WriteLine($"{variant.ModelPath}{(variant.ExternalDataPath is null ? "" : $" + {Path.GetFileName(variant.ExternalDataPath)}")}: {variant.Bytes / 1048576.0:F2} MiB" +
                              $"{(variant == r ? "" : $" ({(double)variant.Bytes / r.Bytes:P0} of fp32)")}; report {variant.ReportPath}");
            if (!variant.Passed) Console.Error.WriteLine($"error: the {variant.Stage} export does not match TorchSharp within tolerance; the ONNX file is kept for inspection but must not be shipped.");
            ok &= variant.Passed;
        }
        return ok ? 0 : 1;
    }
}
