using System.Text.Json;
using System.Text.Json.Nodes;
using Tessera.Export;
using Tessera.Export.Checkpoints;

namespace Tessera.GlmImage;

/// <summary>How to import: a layer slice, weight variants, opset.</summary>
public sealed record GlmImageImportOptions
{
    /// <summary>Keep the first N layers of each transformer (AR and DiT), for small machines; null keeps all.</summary>
    public int? Layers { get; init; }
    public IReadOnlyList<ExportVariant> Variants { get; init; } = [];
    public int Opset { get; init; } = ExportContext.DefaultOpset;
}

/// <summary>One stage of an import: its ONNX file, parity and what it did with the checkpoint's tensors.</summary>
public sealed record GlmImageStageImport(string Stage, string Component, ExportResult Model, int Consumed, IReadOnlyDictionary<string, int> NotUsed);

public sealed record GlmImageImportResult(string Package, IReadOnlyList<GlmImageStageImport> Stages, string ReportPath)
{
    public bool Passed => Stages.All(s => s.Model.Passed && s.Model.Variants.All(v => v.Passed));
}

/// <summary>
/// A GLM-Image Hugging Face snapshot (<c>model_index.json</c> and its component folders) → a Tessera package: one
/// ONNX file per stage, each validated against its TorchSharp module, the tokenizer, processor and scheduler
/// settings, and an import report that accounts for every checkpoint tensor. Stages are exported one after another,
/// each component's weights read shard by shard, so one stage is in memory at a time.
/// </summary>
public static class GlmImageImporter
{
    /// <summary>model_index.json's components and the classes this importer reads them as.</summary>
    public static readonly IReadOnlyDictionary<string, string> Components = new Dictionary<string, string>
    {
        ["vision_language_encoder"] = "GlmImageForConditionalGeneration",
        ["transformer"] = "GlmImageTransformer2DModel",
        ["vae"] = "AutoencoderKL",
        ["text_encoder"] = "T5EncoderModel",
        ["scheduler"] = "FlowMatchEulerDiscreteScheduler",
        ["processor"] = "GlmImageProcessor",
        ["tokenizer"] = "ByT5Tokenizer",
    };

    /// <summary>Checks the snapshot's layout: model_index.json names every component with the expected class, and each folder exists.</summary>
    public static JsonObject OpenIndex(string snapshot)
    {
        if (!Directory.Exists(snapshot)) throw new CheckpointException($"Snapshot folder {snapshot} does not exist (give the folder that holds model_index.json).");
        var indexPath = Path.Combine(snapshot, "model_index.json");
        if (!File.Exists(indexPath)) throw new CheckpointException($"{snapshot} has no model_index.json; give the root of the GLM-Image snapshot (zai-org/GLM-Image), not one of its component folders.");
        JsonObject index;
        try
        {
            index = JsonNode.Parse(File.ReadAllText(indexPath)) as JsonObject ?? throw new CheckpointException($"{indexPath} is not a JSON object.");
        }
        catch (JsonException e)
        {
            throw new CheckpointException($"{indexPath} is not valid JSON ({e.Message}).");
        }
        var problems = new List<string>();
        foreach (var (component, cls) in Components)
        {
            // Each entry is ["library", "ClassName"].
            var entry = index[component] as JsonArray;
            var found = entry is { Count: 2 } ? entry[1]?.GetValue<string>() : null;
            if (found is null) problems.Add($"{component} is not listed");
            else if (found != cls) problems.Add($"{component} is {found}, expected {cls}");
            else if (!Directory.Exists(Path.Combine(snapshot, component))) problems.Add($"folder {component}/ is missing");
        }
        if (problems.Count > 0) throw new CheckpointException($"{snapshot} is not a GLM-Image snapshot this importer reads: {string.Join("; ", problems)}.");
        return index;
    }

    public static GlmImageImportResult Import(string snapshot, string outDir, GlmImageImportOptions options, TextWriter? log = null)
    {
        log ??= TextWriter.Null;
        OpenIndex(snapshot);
        Directory.CreateDirectory(outDir);
        string Dir(string component) => Path.Combine(snapshot, component);
        var stages = new List<GlmImageStageImport>();

        log.WriteLine("[1/4] AR (vision_language_encoder)");
        var ar = GlmImageArExporter.Export(Dir("vision_language_encoder"), outDir, options.Layers, options.Variants, options.Opset, log);
        stages.Add(new("ar", "vision_language_encoder", ar.Model, ar.Weights.Consumed.Count,
            new Dictionary<string, int> { ["image-to-image (vision tower, VQ)"] = ar.ImageToImageTensors, ["beyond the layer slice"] = ar.SlicedAwayTensors }));
        log.WriteLine("[2/4] DiT (transformer)");
        var dit = GlmImageDitExporter.Export(Dir("transformer"), outDir, options.Layers, options.Variants, options.Opset, log);
        stages.Add(new("decoder", "transformer", dit.Model, dit.Weights.Consumed.Count, new Dictionary<string, int> { ["beyond the layer slice"] = dit.SlicedAwayTensors }));
        log.WriteLine("[3/4] VAE decoder (vae)");
        var vae = GlmImageVaeExport.Export(Dir("vae"), outDir, options.Variants, options.Opset, log);
        stages.Add(new("vae", "vae", vae.Model, vae.Weights.Consumed.Count, new Dictionary<string, int> { ["image-to-image (VAE encoder)"] = vae.EncoderTensors }));
        log.WriteLine("[4/4] glyph encoder (text_encoder)");
        var t5 = GlmImageT5Exporter.Export(Dir("text_encoder"), outDir, options.Layers, options.Variants, options.Opset, log);
        stages.Add(new("glyph-encoder", "text_encoder", t5.Model, t5.Weights.Consumed.Count, new Dictionary<string, int> { ["beyond the layer slice"] = t5.SlicedAwayTensors }));

        // Settings the pipeline needs, copied as the snapshot has them.
        foreach (var (from, to) in new[] { ("scheduler/scheduler_config.json", "scheduler_config.json"), ("vision_language_encoder/generation_config.json", "generation_config.json") })
            if (File.Exists(Path.Combine(snapshot, from))) File.Copy(Path.Combine(snapshot, from), Path.Combine(outDir, to), overwrite: true);
        foreach (var folder in new[] { "processor", "tokenizer" })
        {
            var target = Directory.CreateDirectory(Path.Combine(outDir, folder));
            foreach (var f in Directory.GetFiles(Path.Combine(snapshot, folder)))
                if (new FileInfo(f).Length < 64L << 20) File.Copy(f, Path.Combine(target.FullName, Path.GetFileName(f)), overwrite: true);
        }

        var manifest = new JsonObject
        {
            ["kind"] = "glm-image",
            ["name"] = "glm-image",
            ["layers"] = options.Layers is { } n ? $"first {n} layers of each transformer (a slice, not the full model)" : "all",
            ["files"] = new JsonObject { ["ar"] = "ar.onnx", ["decoder"] = "decoder.onnx", ["vae"] = "vae_decoder.onnx", ["glyphEncoder"] = Path.GetFileName(t5.Model.ModelPath) },
            ["ar"] = new JsonObject
            {
                ["layers"] = ar.Config.LayersBuilt, ["kvHeads"] = ar.Config.KvHeads, ["headDim"] = ar.Config.HeadDim,
                ["visionVocabulary"] = ar.Config.VisionVocabSize, ["mropeSection"] = new JsonArray(ar.Config.MropeSection.Select(s => (JsonNode)s).ToArray()),
            },
            ["decoder"] = new JsonObject { ["patchSize"] = dit.Config.PatchSize, ["latentChannels"] = dit.Config.InChannels, ["glyphWidth"] = dit.Config.TextEmbedDim, ["codebookSize"] = dit.Config.CodebookSize },
            ["vae"] = new JsonObject { ["scaleFactor"] = vae.Config.ScaleFactor },
            ["source"] = Path.GetFullPath(snapshot),
        };
        File.WriteAllText(Path.Combine(outDir, "manifest.json"), manifest.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));

        var report = new JsonObject
        {
            ["passed"] = stages.All(s => s.Model.Passed),
            ["stages"] = new JsonArray(stages.Select(s => (JsonNode)new JsonObject
            {
                ["stage"] = s.Stage, ["component"] = s.Component, ["file"] = Path.GetFileName(s.Model.ModelPath), ["bytes"] = s.Model.Bytes,
                ["parity"] = s.Model.Passed, ["worstAbsError"] = s.Model.Parity.Max(p => p.MaxAbsError) is var worst && double.IsFinite(worst) ? worst : null,
                ["tensors"] = new JsonObject
                {
                    ["consumed"] = s.Consumed, ["missing"] = 0, ["unexpected"] = 0,
                    ["notUsed"] = new JsonObject(s.NotUsed.Where(kv => kv.Value > 0).Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
                },
            }).ToArray()),
            ["notBuilt"] = "image-to-image (the vision tower, the VQ and the VAE encoder) is not exported by this version",
        };
        var reportPath = Path.Combine(outDir, "import.json");
        File.WriteAllText(reportPath, report.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return new GlmImageImportResult(outDir, stages, reportPath);
    }
}
