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
            return JsonSerializer.Deserialize<StageConfig>(File.ReadAllText(path), Json)
                ?? throw new InvalidDataException($"Config file {path} is empty.");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"Config file {path} is not a valid stage config: {e.Message}", e);
        }
    }

    public string ToJson() => JsonSerializer.Serialize(this, Json);
}
