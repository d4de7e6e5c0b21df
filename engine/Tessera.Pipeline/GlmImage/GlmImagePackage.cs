using System.Text.Json;
using System.Text.Json.Nodes;
using Tessera.Abstractions;

namespace Tessera.Pipeline.GlmImage;

/// <summary>The flow-matching schedule settings (<c>scheduler_config.json</c>, diffusers' FlowMatchEulerDiscreteScheduler).</summary>
public sealed record GlmImageSchedulerSettings(int TrainTimesteps, bool DynamicShifting, double BaseShift, double MaxShift, int BaseImageSeqLen, string TimeShiftType, double Shift);

/// <summary>AR sampling defaults (<c>generation_config.json</c>).</summary>
public sealed record GlmImageSampling(double Temperature, int TopK, double TopP);

/// <summary>
/// A package written by <c>tessera import glm-image</c>: <c>manifest.json</c> with <c>"kind": "glm-image"</c>, one ONNX
/// file per stage (AR, DiT, VAE decoder, glyph encoder), the scheduler and generation settings and GLM's tokenizer.
/// </summary>
public sealed class GlmImagePackage
{
    public const string Kind = "glm-image";


    private GlmImagePackage(string directory, JsonObject manifest, HfBpeTokenizer tokenizer, GlmImageSchedulerSettings scheduler, GlmImageSampling sampling)
    {
        Directory = directory;
        Manifest = manifest;
        Tokenizer = tokenizer;
        Scheduler = scheduler;
        Sampling = sampling;
    }

    public string Directory { get; }
    public JsonObject Manifest { get; }
    public HfBpeTokenizer Tokenizer { get; }
    public GlmImageSchedulerSettings Scheduler { get; }
    public GlmImageSampling Sampling { get; }

    public int ArLayers => Manifest["ar"]!["layers"]!.GetValue<int>();
    public int ArKvHeads => Manifest["ar"]!["kvHeads"]!.GetValue<int>();
    public int ArHeadDim => Manifest["ar"]!["headDim"]!.GetValue<int>();
    public int VisionVocabulary => Manifest["ar"]!["visionVocabulary"]!.GetValue<int>();
    public int CodebookSize => Manifest["decoder"]!["codebookSize"]!.GetValue<int>();
    public int LatentChannels => Manifest["decoder"]!["latentChannels"]!.GetValue<int>();
    public int VaeScale => Manifest["vae"]!["scaleFactor"]!.GetValue<int>();
    public string Name => Manifest["name"]?.GetValue<string>() ?? Kind;

    /// <summary>Path of a stage's file (ar, decoder, vae, glyphEncoder), confined to the package folder.</summary>
    public string File(string stage)
    {
        var manifest = Path.Combine(Directory, "manifest.json");
        var name = Manifest["files"]?[stage]?.GetValue<string>() ?? throw new InvalidDataException($"{manifest} names no file for stage '{stage}'; re-import the package.");
        // Inside the package, a regular file, within the size limit (the same rules as every package file).
        return InputFiles.ResolveInside(Directory, name, manifest, $"files.{stage}", InputFiles.MaxOnnxBytes);
    }

    /// <summary>True when <paramref name="directory"/>'s manifest says it is a GLM-Image package.</summary>
    public static bool IsGlmImage(string directory)
    {
        var path = Path.Combine(directory, "manifest.json");
        if (!System.IO.File.Exists(path) || new FileInfo(path).Length > 1 << 20) return false;
        try
        {
            return JsonNode.Parse(System.IO.File.ReadAllText(path))?["kind"]?.GetValue<string>() == Kind;
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            return false;
        }
    }

    public static GlmImagePackage Open(string directory)
    {
        var manifestPath = Path.Combine(directory, "manifest.json");
        JsonObject manifest;
        try
        {
            manifest = JsonNode.Parse(InputFiles.ReadAllText(manifestPath, "Manifest")) as JsonObject ?? throw new InvalidDataException($"{manifestPath} is not a JSON object.");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{manifestPath} is not valid JSON ({e.Message}); re-import the package.");
        }
        var tokenizerPath = Path.Combine(directory, "processor", "tokenizer.json");
        if (!System.IO.File.Exists(tokenizerPath)) throw new InvalidDataException($"{directory} has no processor/tokenizer.json (GLM's tokenizer, copied by tessera import glm-image); re-import the package.");
        var s = ReadJson(Path.Combine(directory, "scheduler_config.json"));
        var scheduler = new GlmImageSchedulerSettings(
            s?["num_train_timesteps"]?.GetValue<int>() ?? 1000, s?["use_dynamic_shifting"]?.GetValue<bool>() ?? true,
            s?["base_shift"]?.GetValue<double>() ?? 0.25, s?["max_shift"]?.GetValue<double>() ?? 0.75, s?["base_image_seq_len"]?.GetValue<int>() ?? 256,
            s?["time_shift_type"]?.GetValue<string>() ?? "linear", s?["shift"]?.GetValue<double>() ?? 1.0);
        var g = ReadJson(Path.Combine(directory, "generation_config.json"));
        var sampling = new GlmImageSampling(g?["temperature"]?.GetValue<double>() ?? 0.9, g?["top_k"]?.GetValue<int>() ?? 16512, g?["top_p"]?.GetValue<double>() ?? 0.75);
        return new GlmImagePackage(directory, manifest, HfBpeTokenizer.Load(tokenizerPath), scheduler, sampling);
    }

    private static JsonObject? ReadJson(string path) => System.IO.File.Exists(path) ? JsonNode.Parse(InputFiles.ReadAllText(path, Path.GetFileName(path))) as JsonObject : null;
}
