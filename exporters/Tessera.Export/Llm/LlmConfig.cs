using System.Text.Json;
using System.Text.Json.Nodes;
using Tessera.Export.Checkpoints;

namespace Tessera.Export.Llm;

/// <summary>The architecture families the checkpoint builders know.</summary>
public enum LlmArchitecture
{
    /// <summary>GPT-2: learned positions, LayerNorm, fused QKV projection stored [in, out] (HF's Conv1D), GELU MLP, tied head.</summary>
    Gpt2,

    /// <summary>Llama: rotary positions, RMSNorm, grouped-query attention, SwiGLU MLP, tied or untied head.</summary>
    Llama,
}

/// <summary>
/// A decoder's configuration read from a Hugging Face <c>config.json</c> (HF field names, defaults as Hugging Face
/// documents them). Fields that change the arithmetic and that the builders do not implement are refused by name,
/// so a model is never exported with a silently different computation; fields that only describe training or
/// tooling are accepted and ignored.
/// </summary>
public sealed record LlmConfig
{
    public required LlmArchitecture Architecture { get; init; }
    public required int VocabSize { get; init; }
    public required int Hidden { get; init; }
    public required int Layers { get; init; }
    public required int Heads { get; init; }
    public required int KvHeads { get; init; }
    public required int HeadDim { get; init; }
    public required int Intermediate { get; init; }
    public required double NormEps { get; init; }
    public required int MaxPositions { get; init; }
    public required bool TieWordEmbeddings { get; init; }

    /// <summary>Llama: the rotary base.</summary>
    public double RopeTheta { get; init; } = 10000.0;

    /// <summary>Llama: biases on q/k/v/o projections (<c>attention_bias</c>) and on the MLP (<c>mlp_bias</c>).</summary>
    public bool AttentionBias { get; init; }
    public bool MlpBias { get; init; }

    /// <summary>GPT-2: true for the tanh approximation (<c>gelu_new</c>, <c>gelu_pytorch_tanh</c>), false for exact <c>gelu</c>.</summary>
    public bool GeluTanh { get; init; } = true;

    public long? BosTokenId { get; init; }
    public long[] EosTokenIds { get; init; } = [];
    public long? PadTokenId { get; init; }

    // Fields every PretrainedConfig may carry that do not change inference arithmetic.
    private static readonly string[] Common =
    [
        "architectures", "model_type", "torch_dtype", "dtype", "transformers_version", "_name_or_path", "use_cache",
        "bos_token_id", "eos_token_id", "pad_token_id", "initializer_range", "output_attentions", "output_hidden_states",
        "return_dict", "tokenizer_class", "id2label", "label2id", "task_specific_params", "problem_type", "is_decoder",
        "tie_word_embeddings", "vocab_size",
    ];

    private static readonly string[] Gpt2Fields =
    [
        "activation_function", "attn_pdrop", "embd_pdrop", "resid_pdrop", "layer_norm_epsilon", "n_ctx", "n_embd", "n_head",
        "n_inner", "n_layer", "n_positions", "scale_attn_weights", "summary_activation", "summary_first_dropout",
        "summary_proj_to_labels", "summary_type", "summary_use_proj", "reorder_and_upcast_attn",
        "scale_attn_by_inverse_layer_idx", "add_cross_attention",
    ];

    private static readonly string[] LlamaFields =
    [
        "attention_bias", "attention_dropout", "hidden_act", "hidden_size", "intermediate_size", "max_position_embeddings",
        "num_attention_heads", "num_hidden_layers", "num_key_value_heads", "pretraining_tp", "rms_norm_eps", "rope_scaling",
        "rope_theta", "mlp_bias", "head_dim",
    ];

    /// <param name="architecture">"auto" (from <c>model_type</c>), "gpt2" or "llama".</param>
    public static LlmConfig Parse(JsonObject json, string architecture, string source)
    {
        string modelType = Str(json, "model_type", source) ?? "";
        var arch = architecture switch
        {
            "gpt2" => LlmArchitecture.Gpt2,
            "llama" => LlmArchitecture.Llama,
            "auto" => modelType switch
            {
                "gpt2" => LlmArchitecture.Gpt2,
                "llama" => LlmArchitecture.Llama,
                "" => throw new CheckpointException($"{source} has no \"model_type\"; give --arch gpt2 or --arch llama."),
                _ => throw new CheckpointException($"{source}: model_type \"{modelType}\" has no builder; the builders are gpt2 and llama (Llama covers GQA, RMSNorm, SwiGLU, rotary). Use --arch to force one if the architecture really is the same."),
            },
            _ => throw new ArgumentException($"--arch {architecture}: use auto, gpt2 or llama."),
        };
        var known = new HashSet<string>(Common.Concat(arch == LlmArchitecture.Gpt2 ? Gpt2Fields : LlamaFields), StringComparer.Ordinal);
        foreach (var (key, _) in json)
            if (!known.Contains(key))
                throw new CheckpointException($"{source}: field \"{key}\" is not supported by the {Name(arch)} builder (it may change the computation); remove it only if it has no effect on inference.");
        return arch == LlmArchitecture.Gpt2 ? Gpt2(json, source) : Llama(json, source);
    }

    private static LlmConfig Gpt2(JsonObject j, string source)
    {
        string act = Str(j, "activation_function", source) ?? "gelu_new";
        bool tanh = act switch
        {
            "gelu_new" or "gelu_pytorch_tanh" => true,
            "gelu" => false,
            _ => throw Unsupported(source, "activation_function", act, "gelu_new, gelu_pytorch_tanh or gelu"),
        };
        Require(j, source, "scale_attn_weights", true);
        Require(j, source, "scale_attn_by_inverse_layer_idx", false);
        Require(j, source, "reorder_and_upcast_attn", false);
        Require(j, source, "add_cross_attention", false);
        int hidden = Int(j, "n_embd", source, 768), heads = Int(j, "n_head", source, 12);
        if (hidden % heads != 0) throw new CheckpointException($"{source}: n_embd {hidden} is not a multiple of n_head {heads}.");
        return new LlmConfig
        {
            Architecture = LlmArchitecture.Gpt2,
            VocabSize = Int(j, "vocab_size", source, 50257),
            Hidden = hidden,
            Layers = Int(j, "n_layer", source, 12),
            Heads = heads,
            KvHeads = heads,
            HeadDim = hidden / heads,
            Intermediate = j["n_inner"] is null ? 4 * hidden : Int(j, "n_inner", source, 0),
            NormEps = Double(j, "layer_norm_epsilon", source, 1e-5),
            MaxPositions = Int(j, "n_positions", source, 1024),
            TieWordEmbeddings = Bool(j, "tie_word_embeddings", source, true),
            GeluTanh = tanh,
            BosTokenId = Long(j, "bos_token_id", source),
            EosTokenIds = Longs(j, "eos_token_id", source),
            PadTokenId = Long(j, "pad_token_id", source),
        };
    }

    private static LlmConfig Llama(JsonObject j, string source)
    {
        string act = Str(j, "hidden_act", source) ?? "silu";
        if (act != "silu") throw Unsupported(source, "hidden_act", act, "silu");
        if (j["rope_scaling"] is { } scaling)
            throw new CheckpointException($"{source}: field \"rope_scaling\" ({scaling.ToJsonString()}) is not supported by the llama builder (only plain rotary with rope_theta is); export a checkpoint without rope scaling.");
        if (j["pretraining_tp"] is not null && Int(j, "pretraining_tp", source, 1) != 1)
            throw Unsupported(source, "pretraining_tp", j["pretraining_tp"]!.ToJsonString(), "1");
        int hidden = Int(j, "hidden_size", source, 4096), heads = Int(j, "num_attention_heads", source, 32);
        int kv = j["num_key_value_heads"] is null ? heads : Int(j, "num_key_value_heads", source, heads);
        if (heads % kv != 0) throw new CheckpointException($"{source}: num_attention_heads {heads} is not a multiple of num_key_value_heads {kv}.");
        int headDim = j["head_dim"] is null ? hidden / heads : Int(j, "head_dim", source, 0);
        if (headDim % 2 != 0) throw new CheckpointException($"{source}: head_dim {headDim} must be even for rotary positions.");
        return new LlmConfig
        {
            Architecture = LlmArchitecture.Llama,
            VocabSize = Int(j, "vocab_size", source, 32000),
            Hidden = hidden,
            Layers = Int(j, "num_hidden_layers", source, 32),
            Heads = heads,
            KvHeads = kv,
            HeadDim = headDim,
            Intermediate = Int(j, "intermediate_size", source, 11008),
            NormEps = Double(j, "rms_norm_eps", source, 1e-6),
            MaxPositions = Int(j, "max_position_embeddings", source, 2048),
            TieWordEmbeddings = Bool(j, "tie_word_embeddings", source, false),
            RopeTheta = Double(j, "rope_theta", source, 10000.0),
            AttentionBias = Bool(j, "attention_bias", source, false),
            MlpBias = Bool(j, "mlp_bias", source, false),
            BosTokenId = Long(j, "bos_token_id", source),
            EosTokenIds = Longs(j, "eos_token_id", source),
            PadTokenId = Long(j, "pad_token_id", source),
        };
    }

    public static string Name(LlmArchitecture a) => a == LlmArchitecture.Gpt2 ? "gpt2" : "llama";

    private static CheckpointException Unsupported(string source, string field, string value, string allowed) =>
        new($"{source}: {field} {value} is not supported (the builder implements {allowed}).");

    private static void Require(JsonObject j, string source, string field, bool expected)
    {
        if (j[field] is not null && Bool(j, field, source, expected) != expected)
            throw Unsupported(source, field, (!expected).ToString().ToLowerInvariant(), expected.ToString().ToLowerInvariant());
    }

    private static T Get<T>(JsonObject j, string field, string source, string kind, Func<JsonNode, T> read)
    {
        try
        {
            return read(j[field]!);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or JsonException)
        {
            throw new CheckpointException($"{source}: \"{field}\" must be {kind}, not {j[field]!.ToJsonString()}.");
        }
    }

    private static string? Str(JsonObject j, string f, string s) => j[f] is null ? null : Get(j, f, s, "a string", n => n.GetValue<string>());
    private static bool Bool(JsonObject j, string f, string s, bool d) => j[f] is null ? d : Get(j, f, s, "true or false", n => n.GetValue<bool>());
    private static double Double(JsonObject j, string f, string s, double d) => j[f] is null ? d : Get(j, f, s, "a number", n => n.GetValue<double>());
    private static long? Long(JsonObject j, string f, string s) => j[f] is null ? null : Get(j, f, s, "an integer", n => n.GetValue<long>());

    private static long[] Longs(JsonObject j, string f, string s) => j[f] switch
    {
        null => [],
        JsonArray a => a.Select(x => Get(new JsonObject { [f] = x?.DeepClone() }, f, s, "an integer", n => n.GetValue<long>())).ToArray(),
        _ => [Long(j, f, s)!.Value],
    };

    private static int Int(JsonObject j, string f, string s, int d)
    {
        if (j[f] is null) return d;
        long v = Get(j, f, s, "an integer", n => n.GetValue<long>());
        if (v is <= 0 or > 1 << 24) throw new CheckpointException($"{s}: \"{f}\" is {v}; it must be a positive size below 2^24.");
        return (int)v;
    }
}
