using System.Text.Json.Nodes;
using Tessera.Export.Checkpoints;

namespace Tessera.GlmImage;

/// <summary>
/// The AR text model's configuration: <c>vision_language_encoder/config.json</c> (model_type <c>glm_image</c>), its
/// <c>text_config</c>. Defaults are GLM-Image's published ones (transformers' GlmImageTextConfig): hidden 4096, 40
/// layers, 32 query / 2 KV heads of 128 with q/k/v bias, fused SwiGLU 13696, RMSNorm 1e-5, partial rotary 0.5 with
/// the 3-section M-RoPE [8, 12, 12] (temporal, height, width frequencies), a 16512-token vision-vocabulary head.
/// </summary>
public sealed record GlmImageTextConfig
{
    public int VocabSize { get; init; } = 168064;
    public int VisionVocabSize { get; init; } = 16512;
    public int Hidden { get; init; } = 4096;
    public int Intermediate { get; init; } = 13696;
    public int Layers { get; init; } = 40;
    public int Heads { get; init; } = 32;
    public int KvHeads { get; init; } = 2;
    public double RmsNormEps { get; init; } = 1e-5;
    public bool AttentionBias { get; init; } = true;
    public double RopeTheta { get; init; } = 10000.0;
    public double PartialRotaryFactor { get; init; } = 0.5;
    public int[] MropeSection { get; init; } = [8, 12, 12];
    public int MaxPositions { get; init; } = 32768;

    /// <summary>Layers kept of the checkpoint's (a slice for small machines), or null for all.</summary>
    public int? KeptLayers { get; init; }

    public int HeadDim => Hidden / Heads;

    /// <summary>Rotating channels per head (the first ones; the rest pass through).</summary>
    public int RotaryDim => (int)(HeadDim * PartialRotaryFactor);

    public int LayersBuilt => Math.Min(KeptLayers ?? Layers, Layers);

    /// <summary>GLM-Image's own widths at <paramref name="layers"/> layers (for exports and benchmarks on small machines).</summary>
    public static GlmImageTextConfig Official(int? layers = null) => new() { KeptLayers = layers };

    private static readonly HashSet<string> TextFields =
    [
        "vocab_size", "vision_vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
        "num_key_value_heads", "hidden_act", "max_position_embeddings", "rms_norm_eps", "attention_bias", "attention_dropout",
        "tie_word_embeddings", "use_cache", "initializer_range", "rope_parameters", "rope_theta", "partial_rotary_factor",
        "mrope_section", "rope_scaling", "model_type", "pad_token_id", "bos_token_id", "eos_token_id", "torch_dtype", "dtype",
        "head_dim", "architectures", "transformers_version",
    ];

    /// <summary>Reads the text model's fields; a field that changes the arithmetic and is not implemented is refused by name.</summary>
    public static GlmImageTextConfig Parse(JsonObject config, string source, int? keepLayers = null)
    {
        try
        {
            return ParseFields(config, source, keepLayers);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            throw new CheckpointException($"{source}: a field has the wrong type or value ({e.Message}); compare it with the official config.");
        }
    }

    private static GlmImageTextConfig ParseFields(JsonObject config, string source, int? keepLayers)
    {
        var modelType = config["model_type"]?.GetValue<string>();
        if (modelType != "glm_image")
            throw new CheckpointException($"{source}: model_type is \"{modelType}\", not \"glm_image\"; give GLM-Image's vision_language_encoder folder.");
        var t = config["text_config"] as JsonObject ?? throw new CheckpointException($"{source} has no \"text_config\" (the AR text model's settings).");
        foreach (var (key, _) in t)
            if (!TextFields.Contains(key))
                throw new CheckpointException($"{source}: text_config field \"{key}\" is not supported by the GLM-Image AR builder.");
        string act = t["hidden_act"]?.GetValue<string>() ?? "silu";
        if (act != "silu") throw new CheckpointException($"{source}: text_config.hidden_act {act} is not supported (GLM-Image uses silu).");
        // rope settings live in rope_parameters (newer transformers) or at the top of text_config (older).
        var rope = t["rope_parameters"] as JsonObject ?? t["rope_scaling"] as JsonObject;
        string ropeType = rope?["rope_type"]?.GetValue<string>() ?? rope?["type"]?.GetValue<string>() ?? "default";
        if (ropeType != "default") throw new CheckpointException($"{source}: rope_type {ropeType} is not supported (GLM-Image uses the default rotary with M-RoPE sections).");
        double Num(string name, double fallback) => (rope?[name] ?? t[name])?.GetValue<double>() ?? fallback;
        var section = (rope?["mrope_section"] ?? t["mrope_section"]) is JsonArray a ? a.Select(x => x!.GetValue<int>()).ToArray() : [8, 12, 12];
        int Int(string name, int fallback) => t[name]?.GetValue<int>() ?? fallback;
        var c = new GlmImageTextConfig
        {
            VocabSize = Int("vocab_size", 168064),
            VisionVocabSize = Int("vision_vocab_size", 16512),
            Hidden = Int("hidden_size", 4096),
            Intermediate = Int("intermediate_size", 13696),
            Layers = Int("num_hidden_layers", 40),
            Heads = Int("num_attention_heads", 32),
            KvHeads = Int("num_key_value_heads", 2),
            RmsNormEps = t["rms_norm_eps"]?.GetValue<double>() ?? 1e-5,
            AttentionBias = t["attention_bias"]?.GetValue<bool>() ?? true,
            RopeTheta = Num("rope_theta", 10000.0),
            PartialRotaryFactor = Num("partial_rotary_factor", 0.5),
            MropeSection = section,
            MaxPositions = Int("max_position_embeddings", 32768),
            KeptLayers = keepLayers,
        };
        if (c.Hidden % c.Heads != 0 || c.Heads % c.KvHeads != 0)
            throw new CheckpointException($"{source}: hidden {c.Hidden}, {c.Heads} heads and {c.KvHeads} KV heads do not divide evenly.");
        if (c.MropeSection.Sum() * 2 != c.RotaryDim)
            throw new CheckpointException($"{source}: mrope_section [{string.Join(", ", c.MropeSection)}] covers {c.MropeSection.Sum()} frequencies but the rotary part of a head has {c.RotaryDim / 2} (head_dim {c.HeadDim} × partial_rotary_factor {c.PartialRotaryFactor} / 2).");
        if (keepLayers is < 1) throw new ArgumentException("--layers must be at least 1.");
        return c;
    }
}
