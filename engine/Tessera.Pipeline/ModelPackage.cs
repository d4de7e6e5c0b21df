using Tessera.Data;
using System.Text.Json;
using System.Text.Json.Serialization;
using Tessera.Abstractions;
using Tessera.Data.Prompting;

namespace Tessera.Pipeline;

/// <summary>Shapes of the AR graph the pipeline needs (from the manifest).</summary>
public sealed record ArShape(int Layers, int KvHeads, int HeadDim, int CodebookSize, int TargetGrid, int PreviewGrid, int RotaryAxes);

/// <summary>Shapes of the decoder graph the pipeline needs.</summary>
/// <param name="GlyphImage">The decoder also takes a glyph image (input <c>glyph_image</c>), placed with the package's
/// "placement" table.</param>
public sealed record DecoderShape(int ImageSize, int TokenGrid, int MaxGlyphs, int CodebookSize, bool GlyphImage = false);

/// <summary>Default sampling settings shipped with a model.</summary>
public sealed record SamplingDefaults
{
    public int Steps { get; init; } = 20;
    public double Cfg { get; init; } = 3.0;
    /// <summary>Time shift of the Euler schedule (more steps near t = 1, where the image's layout forms).</summary>
    public double Shift { get; init; } = 3.0;
    public double Temperature { get; init; } = 0.8;
    public int TopK { get; init; } = 64;
    public double TopP { get; init; } = 0.95;
}

/// <summary>manifest.json of a model package.</summary>
public sealed record PackageManifest
{
    public required string Name { get; init; }
    public string Version { get; init; } = "0";
    public required Dictionary<string, string> Files { get; init; }
    public required ArShape Ar { get; init; }
    public required DecoderShape Decoder { get; init; }
    public SamplingDefaults Sampling { get; init; } = new();
    /// <summary>Free-form provenance: commands, wall times, checkpoints.</summary>
    public Dictionary<string, string> Provenance { get; init; } = [];

    public static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        WriteIndented = true,
        ReadCommentHandling = JsonCommentHandling.Skip,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };
}

/// <summary>
/// A model package: a folder with <c>manifest.json</c>, one ONNX file per stage (<c>ar</c>, <c>decoder</c>, and
/// optionally <c>vq</c> for image-to-image) and the tokenizer table. Opening it checks that everything is there.
/// </summary>
public sealed class ModelPackage
{
    public const string ManifestFile = "manifest.json";
    public const string DefaultModelVariable = "TESSERA_MODEL";

    private ModelPackage(string directory, PackageManifest manifest, PromptEncoder encoder, TextPlacement? placement)
    {
        Directory = directory;
        Manifest = manifest;
        Prompts = encoder;
        Placement = placement;
    }

    /// <summary>Token → text-coverage table that places the decoder's glyph image (packages whose decoder takes one).</summary>
    public TextPlacement? Placement { get; }

    public string Directory { get; }
    public PackageManifest Manifest { get; }
    public PromptEncoder Prompts { get; }

    /// <summary>Path of a stage's file; throws naming the package and stage when the manifest has none.</summary>
    public string FileFor(string stage) => Manifest.Files.TryGetValue(stage, out var f)
        ? Path.Combine(Directory, f)
        : throw new ModelLoadException(Directory, $"has no '{stage}' stage in its manifest{(stage == "vq" ? " (image-to-image needs the VQ encoder)" : "")}.");

    public bool Has(string stage) => Manifest.Files.ContainsKey(stage);

    /// <summary>Opens a package folder; every problem is a <see cref="ModelLoadException"/> naming the file and what to do.</summary>
    public static ModelPackage Open(string directory)
    {
        directory = Path.GetFullPath(directory);
        if (!System.IO.Directory.Exists(directory))
            throw new ModelLoadException(directory, "does not exist. Pass --model <folder> with a model package (manifest.json + ONNX files), or omit it to use the shipped default.");
        var manifestPath = Path.Combine(directory, ManifestFile);
        if (!File.Exists(manifestPath))
            throw new ModelLoadException(directory, $"has no {ManifestFile}, so it is not a Tessera model package.");
        PackageManifest manifest;
        try
        {
            manifest = JsonSerializer.Deserialize<PackageManifest>(File.ReadAllText(manifestPath), PackageManifest.Json)
                ?? throw new JsonException("empty");
        }
        catch (JsonException e)
        {
            throw new ModelLoadException(manifestPath, $"is not a valid manifest: {e.Message}", e);
        }
        foreach (var stage in new[] { "ar", "decoder", "tokenizer" })
            if (!manifest.Files.ContainsKey(stage)) throw new ModelLoadException(manifestPath, $"lists no '{stage}' file.");
        foreach (var (stage, file) in manifest.Files)
            if (!File.Exists(Path.Combine(directory, file)))
                throw new ModelLoadException(Path.Combine(directory, file), $"is missing from the package (the manifest's '{stage}' file). Re-copy or re-export the package.");
        var tokenizerPath = Path.Combine(directory, manifest.Files["tokenizer"]);
        PromptEncoder encoder;
        try { encoder = PromptEncoder.FromJson(File.ReadAllText(tokenizerPath), tokenizerPath); }
        catch (InvalidDataException e) { throw new ModelLoadException(tokenizerPath, e.Message, e); }
        TextPlacement? placement = null;
        if (manifest.Decoder.GlyphImage)
        {
            if (!manifest.Files.TryGetValue("placement", out var placementFile))
                throw new ModelLoadException(manifestPath, "has a decoder that takes a glyph image but lists no 'placement' file (the token → text-coverage table). Re-run tessera package.");
            var placementPath = Path.Combine(directory, placementFile);
            try { placement = TextPlacement.Load(placementPath); }
            catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
            { throw new ModelLoadException(placementPath, $"is not a valid placement table: {e.Message}", e); }
            if (placement.CoverageByCode.Count != manifest.Decoder.CodebookSize)
                throw new ModelLoadException(placementPath, $"has {placement.CoverageByCode.Count} entries but the decoder's codebook has {manifest.Decoder.CodebookSize}. Re-run tessera package.");
        }
        return new ModelPackage(directory, manifest, encoder, placement);
    }

    /// <summary>
    /// The shipped default: $TESSERA_MODEL, else <c>models/default</c> in the nearest folder above the executable
    /// (a source checkout), else <c>models/default</c> beside it (a published install).
    /// </summary>
    public static string DefaultDirectory()
    {
        if (Environment.GetEnvironmentVariable(DefaultModelVariable) is { Length: > 0 } env) return env;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "models", "default");
            if (File.Exists(Path.Combine(candidate, ManifestFile))) return candidate;
        }
        return Path.Combine(AppContext.BaseDirectory, "models", "default");
    }
}
