using System.Text.Json;
using System.Text.Json.Serialization;

namespace Tessera.Models;

/// <summary>VQ image tokenizer: image (3, S, S) → codes (S/2^L, S/2^L). Defaults: 64x64 → 8x8, 512 codes.</summary>
public sealed record VqConfig
{
    /// <summary>Image side in pixels.</summary>
    public int ImageSize { get; init; } = 64;
    /// <summary>Stride-2 downsampling stages (3: 64 → 8).</summary>
    public int Downsamples { get; init; } = 3;
    /// <summary>Conv channels at full resolution; doubled once at the bottleneck.</summary>
    public int Channels { get; init; } = 32;
    /// <summary>Codebook entries (vocabulary of visual tokens).</summary>
    public int CodebookSize { get; init; } = 512;
    /// <summary>Code vector width; codes and encodings are L2-normalised, so lookup is by cosine similarity.</summary>
    public int CodeDim { get; init; } = 32;
    /// <summary>Weight of the commitment term (encoder pulled towards its code).</summary>
    public double CommitmentWeight { get; init; } = 0.25;

    public int GridSize => ImageSize >> Downsamples;
}

/// <summary>Training hyperparameters, shared by the three stages.</summary>
public sealed record TrainConfig
{
    public int Steps { get; init; } = 2000;
    public int BatchSize { get; init; } = 32;
    public double LearningRate { get; init; } = 2e-3;
    /// <summary>Linear warm-up steps, then cosine decay to 10% of the rate.</summary>
    public int WarmupSteps { get; init; } = 100;
    /// <summary>AdamW decoupled weight decay, on matrices only (not norms, biases or embeddings).</summary>
    public double WeightDecay { get; init; } = 0.01;
    /// <summary>Decay of the exponential moving average of the weights (the weights that get exported).</summary>
    public double EmaDecay { get; init; } = 0.995;
    public double GradClip { get; init; } = 1.0;
    public int CheckpointEvery { get; init; } = 250;
    /// <summary>Checkpoints kept (older ones are deleted).</summary>
    public int KeepCheckpoints { get; init; } = 3;
    public ulong Seed { get; init; } = 0;
    /// <summary>Torch intra-op threads (0 = all cores).</summary>
    public int Threads { get; init; } = 0;
}

/// <summary>One training stage's configuration file: the network and how to train it.</summary>
public sealed record StageConfig
{
    public VqConfig? Vq { get; init; }
    public ArConfig? Ar { get; init; }
    public DitConfig? Dit { get; init; }
    /// <summary>For the AR and decoder stages: the VQ run folder whose checkpoint makes the token targets.</summary>
    public string? VqRun { get; init; }
    /// <summary>For the AR and decoder stages: how many distinct training samples to tokenize and cycle through.</summary>
    public int DatasetSize { get; init; } = 40000;
    /// <summary>
    /// A run folder whose EMA weights start this run (fine-tuning). Tensors of equal shape are copied; an input layer
    /// that gained channels keeps the trained ones and starts the new ones at zero, so the network starts as it was.
    /// </summary>
    public string? InitFrom { get; init; }
    public TrainConfig Train { get; init; } = new();

    public static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        WriteIndented = true,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    };

    /// <summary>Reads a config file; unknown keys and bad JSON are errors naming the file.</summary>
    public static StageConfig Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Config file {path} does not exist.", path);
        try
        {
            var config = JsonSerializer.Deserialize<StageConfig>(File.ReadAllText(path), Json)
                ?? throw new InvalidDataException($"Config file {path} is empty.");
            // Paths in a config are relative to the config file.
            var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
            string? Resolve(string? p) => p is null ? null : Path.GetFullPath(Path.Combine(dir, p));
            return config with { VqRun = Resolve(config.VqRun), InitFrom = Resolve(config.InitFrom) };
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"Config file {path} is not a valid stage config: {e.Message}", e);
        }
    }

    public string ToJson() => JsonSerializer.Serialize(this, Json);
}

/// <summary>
/// GLM-style AR transformer: RMSNorm, grouped-query attention, SwiGLU, partial multi-axis rotary positions.
/// Defaults are the shipped tiny model; <see cref="GlmImageWidths"/> has GLM-Image's real AR widths.
/// </summary>
public sealed record ArConfig
{
    public int Hidden { get; init; } = 192;
    public int Layers { get; init; } = 4;
    public int Heads { get; init; } = 4;
    /// <summary>Key/value heads; each serves Heads / KvHeads query heads.</summary>
    public int KvHeads { get; init; } = 2;
    public int Ffn { get; init; } = 512;
    /// <summary>Fraction of each head's channels that rotate (GLM: 0.5).</summary>
    public double PartialRotary { get; init; } = 0.5;
    /// <summary>Position axes for rotary: 3 = (temporal, row, column), after GLM-Image's MRoPE.</summary>
    public int RotaryAxes { get; init; } = 3;
    public double RopeTheta { get; init; } = 10000.0;
    /// <summary>Input vocabulary (specials + text table + bytes + grid sizes + visual tokens); set from the prompt encoder.</summary>
    public int VocabSize { get; init; } = 1024;
    /// <summary>Visual tokens the output head predicts (the VQ codebook size).</summary>
    public int CodebookSize { get; init; } = 512;
    public int TargetGrid { get; init; } = 8;
    public int PreviewGrid { get; init; } = 4;

    public int HeadDim => Hidden / Heads;
    public int RotaryDim => (int)(HeadDim * PartialRotary) / 2 * 2;

    /// <summary>GLM-Image's AR widths (hidden 4096, 32 query / 2 KV heads, FFN 13696, partial rotary 0.5) with few layers, for export and benchmarks.</summary>
    public static ArConfig GlmImageWidths(int layers = 2) => new()
    {
        Hidden = 4096, Layers = layers, Heads = 32, KvHeads = 2, Ffn = 13696, PartialRotary = 0.5, RopeTheta = 10000.0,
        VocabSize = 1024, CodebookSize = 512,
    };
}

/// <summary>
/// DiT decoder in pixel space (CogView4 / GLM-Image style, small): patches of <c>Patch</c> pixels, AdaLN-Zero
/// blocks conditioned on the diffusion time, QK-norm, prior visual tokens added to the patch embeddings, glyph
/// bytes joined to the image tokens in one attention stream. Trained with flow matching (velocity target).
/// </summary>
public sealed record DitConfig
{
    public int ImageSize { get; init; } = 64;
    public int Patch { get; init; } = 4;
    public int Hidden { get; init; } = 192;
    public int Layers { get; init; } = 6;
    public int Heads { get; init; } = 3;
    public int MlpRatio { get; init; } = 4;
    /// <summary>Visual token vocabulary of the prior (id CodebookSize means "no prior", for the unconditional branch).</summary>
    public int CodebookSize { get; init; } = 512;
    /// <summary>Longest glyph byte string (padded with id 0; byte b has id b + 1).</summary>
    public int MaxGlyphs { get; init; } = 16;
    /// <summary>Probability of dropping both prior and glyphs in training, which teaches the unconditional branch for CFG.</summary>
    public double ConditionDropout { get; init; } = 0.1;
    /// <summary>
    /// Also condition on a glyph image: the quoted text drawn in the shipped font at its layout, white on black
    /// (one extra input channel beside x_t). Dropped together with the prior and glyphs for CFG.
    /// </summary>
    public bool GlyphImage { get; init; }

    public int TokenGrid => ImageSize / Patch;
    public int InputChannels => GlyphImage ? 4 : 3;
    public int NullPrior => CodebookSize;
}
