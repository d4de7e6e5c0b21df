using System.Text.Json.Nodes;
using Tessera.Export.Checkpoints;

namespace Tessera.GlmImage;

/// <summary>
/// The glyph encoder's configuration: <c>text_encoder/config.json</c> (transformers' T5Config, read as
/// T5EncoderModel reads it). Defaults are ByT5-small's, which GLM-Image ships: d_model 1472, 6 heads of 64 (attention
/// inner width 384, not 1472), gated-GELU feed-forward 3584, 12 layers, a 384-id byte vocabulary, RMS norm 1e-6,
/// 32 relative-position buckets up to distance 128.
/// </summary>
public sealed record GlmImageT5Config
{
    public int DModel { get; init; } = 1472;
    public int DKv { get; init; } = 64;
    public int DFf { get; init; } = 3584;
    public int Heads { get; init; } = 6;
    public int Layers { get; init; } = 12;
    public int VocabSize { get; init; } = 384;
    public double LayerNormEps { get; init; } = 1e-6;
    public int RelativeBuckets { get; init; } = 32;
    public int RelativeMaxDistance { get; init; } = 128;

    /// <summary>Layers kept of the checkpoint's (a slice for small machines), or null for all.</summary>
    public int? KeptLayers { get; init; }

    /// <summary>Width of q, k, v and of o's input: heads × d_kv (384 for ByT5-small).</summary>
    public int Inner => Heads * DKv;

    public int LayersBuilt => Math.Min(KeptLayers ?? Layers, Layers);

    // Fields that do not change the encoder's arithmetic: bookkeeping, training-only settings (dropout,
    // initialisation, gradient checkpointing), token ids, and the decoder side (T5EncoderModel forces
    // is_decoder = false, use_cache = false, and ignores the decoder's layer count and the LM-head tying).
    private static readonly HashSet<string> Accepted =
    [
        "_name_or_path", "architectures", "model_type", "transformers_version", "torch_dtype", "dtype",
        "d_model", "d_kv", "d_ff", "num_heads", "num_layers", "vocab_size", "feed_forward_proj", "dense_act_fn",
        "is_gated_act", "layer_norm_epsilon", "relative_attention_num_buckets", "relative_attention_max_distance",
        "dropout_rate", "classifier_dropout", "initializer_factor", "gradient_checkpointing", "is_encoder_decoder",
        "is_decoder", "use_cache", "num_decoder_layers", "tie_word_embeddings", "pad_token_id", "eos_token_id",
        "bos_token_id", "decoder_start_token_id", "tokenizer_class", "output_past", "n_positions", "task_specific_params",
    ];

    public static GlmImageT5Config Parse(JsonObject j, string source, int? keepLayers = null)
    {
        foreach (var (key, _) in j)
            if (!Accepted.Contains(key)) throw new CheckpointException($"{source}: field \"{key}\" is not supported by the GLM-Image glyph encoder builder.");
        // umt5 has a relative-bias table in every layer and mt5 differs in tying; only T5's layout is built here.
        var modelType = j["model_type"]?.GetValue<string>() ?? "t5";
        if (modelType != "t5") throw new CheckpointException($"{source}: model_type \"{modelType}\" is not supported; the glyph encoder builder reads T5 (ByT5) encoders.");
        var ff = j["feed_forward_proj"]?.GetValue<string>() ?? "gated-gelu";
        if (ff != "gated-gelu")
            throw new CheckpointException($"{source}: feed_forward_proj \"{ff}\" is not supported; the glyph encoder builder implements \"gated-gelu\" (ByT5's tanh-GELU gate).");
        // T5Config derives these two from feed_forward_proj, but values written into config.json override that.
        var act = j["dense_act_fn"]?.GetValue<string>() ?? "gelu_new";
        if (act is not ("gelu_new" or "gelu_pytorch_tanh"))
            throw new CheckpointException($"{source}: dense_act_fn \"{act}\" is not supported; the glyph encoder builder implements the tanh GELU (gelu_new).");
        if (j["is_gated_act"]?.GetValue<bool>() == false)
            throw new CheckpointException($"{source}: is_gated_act false is not supported; gated-gelu uses a gated feed-forward (wi_0, wi_1).");
        int Int(string name, int fallback) => j[name]?.GetValue<int>() ?? fallback;
        var c = new GlmImageT5Config
        {
            DModel = Int("d_model", 1472), DKv = Int("d_kv", 64), DFf = Int("d_ff", 3584), Heads = Int("num_heads", 6),
            Layers = Int("num_layers", 12), VocabSize = Int("vocab_size", 384), LayerNormEps = j["layer_norm_epsilon"]?.GetValue<double>() ?? 1e-6,
            RelativeBuckets = Int("relative_attention_num_buckets", 32), RelativeMaxDistance = Int("relative_attention_max_distance", 128),
            KeptLayers = keepLayers,
        };
        // Bidirectional buckets: half per direction, the first half of those exact; the rest need max_distance beyond it.
        if (c.RelativeBuckets < 4 || c.RelativeBuckets % 4 != 0)
            throw new CheckpointException($"{source}: relative_attention_num_buckets {c.RelativeBuckets} must be a positive multiple of 4 (two directions, each half exact, half logarithmic).");
        if (c.RelativeMaxDistance <= c.RelativeBuckets / 4)
            throw new CheckpointException($"{source}: relative_attention_max_distance {c.RelativeMaxDistance} must exceed the {c.RelativeBuckets / 4} exact distances per direction.");
        if (keepLayers is < 1) throw new ArgumentException("--layers must be at least 1.");
        return c;
    }
}
