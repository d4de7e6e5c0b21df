using Tessera.Models.Export;
using System.Text.Json;
using Tessera.Export;
using Tessera.Models;
using Tessera.Models.Training;
using Tessera.Pipeline;
using Tessera.Cli;
using Tessera.Cli.Bench;

namespace Tessera.Tools.Training;

/// <summary>Exports the three stages and writes manifest.json, the tokenizer table and the training curves.</summary>
public static class PackageBuilder
{
    public static int Run(string vqRun, string arRun, string decoderRun, string outDir, string name, SamplingDefaults? sampling = null)
    {
        Directory.CreateDirectory(outDir);
        var results = new[] { ("vq", vqRun), ("ar", arRun), ("decoder", decoderRun) }
            .Select(s => StageExporter.Export(s.Item1, s.Item2, outDir, externalData: false, Console.Error)).ToList();
        foreach (var r in results)
        {
            Console.WriteLine($"{r.Name,-8} {r.Bytes / 1048576.0,7:F2} MiB  parity {(r.Passed ? "ok" : "FAILED")}  (worst abs error {r.Parity.Max(p => p.MaxAbsError):E2})");
            if (!r.Passed) throw new InvalidDataException($"The {r.Name} export failed parity (see {r.ReportPath}); the package was not written.");
        }

        File.Copy(Path.Combine(arRun, "tokenizer.json"), Path.Combine(outDir, "tokenizer.json"), overwrite: true);
        var curves = Directory.CreateDirectory(Path.Combine(outDir, "curves")).FullName;
        foreach (var (stage, run) in new[] { ("vq", vqRun), ("ar", arRun), ("decoder", decoderRun) })
        {
            foreach (var f in new[] { "loss.csv", "loss.png", "config.json" })
                if (File.Exists(Path.Combine(run, f))) File.Copy(Path.Combine(run, f), Path.Combine(curves, $"{stage}-{f}"), overwrite: true);
            // A fine-tuned stage also brings the curves of the runs it started from: <stage>-init1-* is the run it
            // continued, <stage>-init2-* the one before that, and so on.
            var current = run;
            for (int depth = 1; depth <= 8 && File.Exists(Path.Combine(current, "config.json"))
                 && StageConfig.Load(Path.Combine(current, "config.json")).InitFrom is { } parent && Directory.Exists(parent); depth++)
            {
                foreach (var f in new[] { "loss.csv", "loss.png", "config.json" })
                    if (File.Exists(Path.Combine(parent, f))) File.Copy(Path.Combine(parent, f), Path.Combine(curves, $"{stage}-init{depth}-{f}"), overwrite: true);
                current = parent;
            }
        }

        var ar = JsonSerializer.Deserialize<ArConfig>(TrainedWeights.Latest(arRun).ModelConfigJson, StageConfig.Json)!;
        var dit = JsonSerializer.Deserialize<DitConfig>(TrainedWeights.Latest(decoderRun).ModelConfigJson, StageConfig.Json)!;
        var files = new Dictionary<string, string> { ["ar"] = "ar.onnx", ["decoder"] = "decoder.onnx", ["vq"] = "vq.onnx", ["tokenizer"] = "tokenizer.json" };
        if (dit.GlyphImage)
        {
            var table = Path.Combine(decoderRun, Tessera.Models.Training.DecoderTraining.PlacementFile);
            if (!File.Exists(table)) throw new FileNotFoundException($"The decoder takes a glyph image but its run has no {table}; train it with this version of tessera.", table);
            File.Copy(table, Path.Combine(outDir, "placement.json"), overwrite: true);
            files["placement"] = "placement.json";
        }
        var manifest = new PackageManifest
        {
            Name = name,
            Version = DateTime.UtcNow.ToString("yyyy.MM.dd"),
            Files = files,
            Sampling = sampling ?? new SamplingDefaults(),
            Ar = new ArShape(ar.Layers, ar.KvHeads, ar.HeadDim, ar.CodebookSize, ar.TargetGrid, ar.PreviewGrid, ar.RotaryAxes),
            Decoder = new DecoderShape(dit.ImageSize, dit.TokenGrid, dit.MaxGlyphs, dit.CodebookSize, dit.GlyphImage),
            Provenance = results.ToDictionary(r => $"{r.Name}.checkpoint", r => JsonDocument.Parse(File.ReadAllText(r.ReportPath)).RootElement.GetProperty("checkpoint").GetString() is var c ? $"{Path.GetFileName(c)}" : ""),
        };
        File.WriteAllText(Path.Combine(outDir, ModelPackage.ManifestFile), JsonSerializer.Serialize(manifest, PackageManifest.Json));
        ModelPackage.Open(outDir); // the package we wrote must open
        Console.WriteLine($"wrote package {outDir} ({Directory.GetFiles(outDir, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length) / 1048576.0:F1} MiB)");
        return 0;
    }
}
