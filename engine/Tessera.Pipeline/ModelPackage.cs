using Tessera.Data;
using System.Text.Json;
using System.Text.Json.Serialization;
using Tessera.Abstractions;
using Tessera.Engine;
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
    /// <summary>Decoder sampler (<see cref="Sampling.FlowSamplers"/>): euler, heun or dpm2m; manifests without one use Euler.</summary>
    public string Sampler { get; init; } = Sampling.FlowSamplers.Euler;
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

    private ModelPackage(string directory, PackageManifest manifest, PromptEncoder encoder, TextPlacement? placement, IReadOnlyDictionary<string, string> files)
    {
        _files = files;
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

    /// <summary>Path of a stage's file (checked at open: inside the package, a regular file); throws naming the package and stage when the manifest has none.</summary>
    public string FileFor(string stage) => _files.TryGetValue(stage, out var f)
        ? f
        : throw new ModelLoadException(Directory, $"has no '{stage}' stage in its manifest{(stage == "vq" ? " (image-to-image needs the VQ encoder)" : "")}.");

    public bool Has(string stage) => Manifest.Files.ContainsKey(stage);

    /// <summary>Stage → full path, each resolved inside the package and checked to be a regular file when the package was opened.</summary>
    private readonly IReadOnlyDictionary<string, string> _files;

    /// <summary>
    /// The manifest's file keys; anything else in "files" is an error (a typo would silently do nothing). Besides one
    /// file per stage, a package may carry precision variants of a stage, keyed <c>stage.capability</c>
    /// (<c>decoder.int8</c>, <c>ar.fp16</c>): a device that declares that capability is given the variant
    /// (<see cref="VariantsFor"/>; the host picks int8, then fp16, then bf16).
    /// </summary>
    public static readonly string[] FileKeys = ["ar", "decoder", "vq", "tokenizer", "placement",
        .. new[] { "ar", "decoder", "vq" }.SelectMany(stage => ModelVariants.Preference.Select(c => $"{stage}.{c}"))];

    /// <summary>A stage's model and its precision variants, for <see cref="TesseraEngine.Compile(ModelVariants, string, CompileOptions?)"/>.</summary>
    public ModelVariants VariantsFor(string stage) => new(ModelSource.FromFile(FileFor(stage)),
        ModelVariants.Preference.Where(c => _files.ContainsKey($"{stage}.{c}"))
            .ToDictionary(c => c, c => ModelSource.FromFile(_files[$"{stage}.{c}"])));

    /// <summary>Opens a package folder; every problem is a <see cref="ModelLoadException"/> naming the file and what to do.</summary>
    public static ModelPackage Open(string directory)
    {
        directory = Path.GetFullPath(directory);
        if (File.Exists(directory))
            throw new ModelLoadException(directory, "is a file, not a model package folder. Pass --model <folder> with a model package (manifest.json + ONNX files), or omit it to use the shipped default.");
        if (!System.IO.Directory.Exists(directory))
            throw new ModelLoadException(directory, "does not exist. Pass --model <folder> with a model package (manifest.json + ONNX files), or omit it to use the shipped default.");
        var manifestPath = Path.Combine(directory, ManifestFile);
        if (!File.Exists(manifestPath))
            throw new ModelLoadException(directory, $"has no {ManifestFile}, so it is not a Tessera model package.");
        if (GlmImage.GlmImagePackage.IsGlmImage(directory))
            throw new ModelLoadException(directory, "is a GLM-Image package (tessera import glm-image): 'tessera generate --model' runs it; this command serves Tessera's own model family only.");
        PackageManifest manifest;
        try
        {
            var text = InputFiles.ReadAllText(InputFiles.ResolveInside(directory, ManifestFile, directory, ManifestFile, InputFiles.MaxJsonBytes), "Manifest");
            manifest = JsonSerializer.Deserialize<PackageManifest>(text, PackageManifest.Json)
                ?? throw new JsonException("empty");
        }
        catch (JsonException e)
        {
            throw new ModelLoadException(manifestPath, $"is not a valid manifest: {e.Message}", e);
        }
        catch (Exception e) when (e is InvalidDataException or IOException)
        {
            throw new ModelLoadException(manifestPath, $"cannot be read: {e.Message}", e);
        }
        ManifestRules.Check(manifest, manifestPath);
        var files = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (stage, file) in manifest.Files)
        {
            try
            {
                long limit = file.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase) || stage is "ar" or "decoder" or "vq" ? InputFiles.MaxOnnxBytes : InputFiles.MaxJsonBytes;
                files[stage] = InputFiles.ResolveInside(directory, file, manifestPath, $"files.{stage}", limit);
            }
            catch (FileNotFoundException e) { throw new ModelLoadException(e.FileName ?? Path.Combine(directory, file), $"is missing from the package (the manifest's '{stage}' file). Re-copy or re-export the package.", e); }
            catch (InvalidDataException e) { throw new ModelLoadException(manifestPath, $"cannot be used: {(e.Message.StartsWith(manifestPath + ": ", StringComparison.Ordinal) ? e.Message[(manifestPath.Length + 2)..] : e.Message)}", e); }
        }
        var tokenizerPath = files["tokenizer"];
        PromptEncoder encoder;
        try { encoder = PromptEncoder.FromJson(InputFiles.ReadAllText(tokenizerPath, "Tokenizer table"), tokenizerPath); }
        catch (Exception e) when (e is InvalidDataException or JsonException or IOException or KeyNotFoundException or InvalidOperationException or FormatException or ArgumentException)
        { throw new ModelLoadException(tokenizerPath, $"is not a valid tokenizer table: {e.Message}", e); }
        if (encoder.Vocabulary.CodebookSize != manifest.Ar.CodebookSize)
            throw new ModelLoadException(tokenizerPath, $"is for a codebook of {encoder.Vocabulary.CodebookSize} codes but the manifest's AR has {manifest.Ar.CodebookSize}. Re-run tessera package.");
        TextPlacement? placement = null;
        if (manifest.Decoder.GlyphImage)
        {
            if (!files.TryGetValue("placement", out var placementPath))
                throw new ModelLoadException(manifestPath, "has a decoder that takes a glyph image but lists no 'placement' file (the token → text-coverage table). Re-run tessera package.");
            try { InputFiles.RequireRegularFile(placementPath, "Placement table", InputFiles.MaxJsonBytes); placement = TextPlacement.Load(placementPath); }
            catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException or InvalidDataException or NullReferenceException or ArgumentException)
            { throw new ModelLoadException(placementPath, $"is not a valid placement table: {e.Message}", e); }
            if (placement.CoverageByCode.Count != manifest.Decoder.CodebookSize)
                throw new ModelLoadException(placementPath, $"has {placement.CoverageByCode.Count} entries but the decoder's codebook has {manifest.Decoder.CodebookSize}. Re-run tessera package.");
        }
        return new ModelPackage(directory, manifest, encoder, placement, files);
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
