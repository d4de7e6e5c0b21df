using System.Text.Json;
using Tessera.Export;
using Tessera.Models.Training;
using Tessera.Pipeline;

namespace Tessera.Models.Export;

/// <summary>What <see cref="ModelPackageBuilder.Build"/> did.</summary>
/// <param name="Directory">The package folder.</param>
/// <param name="Stages">Each stage's export (vq, ar, decoder), parity included.</param>
/// <param name="Manifest">The manifest written; null when a stage failed parity (then no package was written).</param>
/// <param name="Bytes">The folder's size on disk.</param>
public sealed record ModelPackageBuild(string Directory, IReadOnlyList<ExportResult> Stages, PackageManifest? Manifest, long Bytes)
{
    /// <summary>Every stage passed parity and the package was written.</summary>
    public bool Written => Manifest is not null;
}

/// <summary>
/// Builds a model package from three training runs: exports each stage with parity against TorchSharp, copies the
/// tokenizer table, the text-placement table (glyph-image decoders) and the training curves (with those of the runs
/// a fine-tuned stage started from), writes manifest.json and opens the result as the pipeline would. `tessera
/// package` is this plus printing.
/// </summary>
public static class ModelPackageBuilder
{
    private static readonly string[] CurveFiles = ["loss.csv", "loss.png", "config.json"];

    /// <summary>Exports, checks and writes; a stage that fails parity stops it before the manifest (see <see cref="ModelPackageBuild.Written"/>).</summary>
    public static ModelPackageBuild Build(string vqRun, string arRun, string decoderRun, string outDir, string name,
        SamplingDefaults? sampling = null, TextWriter? log = null)
    {
        log ??= TextWriter.Null;
        Directory.CreateDirectory(outDir);
        var results = new[] { ("vq", vqRun), ("ar", arRun), ("decoder", decoderRun) }
            .Select(s => StageExporter.Export(s.Item1, s.Item2, outDir, externalData: false, log)).ToList();
        if (results.Any(r => !r.Passed)) return new ModelPackageBuild(outDir, results, null, FolderBytes(outDir));

        File.Copy(Path.Combine(arRun, "tokenizer.json"), Path.Combine(outDir, "tokenizer.json"), overwrite: true);
        CopyCurves(outDir, vqRun, arRun, decoderRun);

        var ar = JsonSerializer.Deserialize<ArConfig>(TrainedWeights.Latest(arRun).ModelConfigJson, StageConfig.Json)!;
        var dit = JsonSerializer.Deserialize<DitConfig>(TrainedWeights.Latest(decoderRun).ModelConfigJson, StageConfig.Json)!;
        var files = new Dictionary<string, string> { ["ar"] = "ar.onnx", ["decoder"] = "decoder.onnx", ["vq"] = "vq.onnx", ["tokenizer"] = "tokenizer.json" };
        if (dit.GlyphImage)
        {
            var table = Path.Combine(decoderRun, DecoderTraining.PlacementFile);
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
        return new ModelPackageBuild(outDir, results, manifest, FolderBytes(outDir));
    }

    private static long FolderBytes(string dir) => Directory.GetFiles(dir, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);

    /// <summary>
    /// Copies each run's curves as curves/&lt;stage&gt;-*; a fine-tuned stage also brings the curves of the runs it
    /// started from: &lt;stage&gt;-init1-* is the run it continued, &lt;stage&gt;-init2-* the one before that, and so on.
    /// </summary>
    private static void CopyCurves(string outDir, string vqRun, string arRun, string decoderRun)
    {
        var curves = Directory.CreateDirectory(Path.Combine(outDir, "curves")).FullName;
        foreach (var (stage, run) in new[] { ("vq", vqRun), ("ar", arRun), ("decoder", decoderRun) })
        {
            foreach (var f in CurveFiles)
                if (File.Exists(Path.Combine(run, f))) File.Copy(Path.Combine(run, f), Path.Combine(curves, $"{stage}-{f}"), overwrite: true);
            var current = run;
            for (int depth = 1; depth <= 8 && File.Exists(Path.Combine(current, "config.json"))
                 && StageConfig.Load(Path.Combine(current, "config.json")).InitFrom is { } parent && Directory.Exists(parent); depth++)
            {
                foreach (var f in CurveFiles)
                    if (File.Exists(Path.Combine(parent, f))) File.Copy(Path.Combine(parent, f), Path.Combine(curves, $"{stage}-init{depth}-{f}"), overwrite: true);
                current = parent;
            }
        }
    }
}
