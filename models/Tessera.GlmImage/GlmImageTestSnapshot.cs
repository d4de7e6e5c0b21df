using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Tessera.GlmImage;

/// <summary>
/// A test aid: a tiny GLM-Image snapshot with random weights in the official layout — the same folders, file names,
/// config fields and tensor names as zai-org/GLM-Image, at small widths and two layers — so the import path can be
/// exercised where the real 35 GB snapshot cannot be downloaded. Written by <c>tessera import glm-image --write-test-snapshot</c>.
/// Its tokenizer files are placeholders (the real ones come with the real snapshot).
/// </summary>
public static class GlmImageTestSnapshot
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public static void Write(string dir, int seed = 0)
    {
        if (Directory.Exists(dir) && Directory.EnumerateFileSystemEntries(dir).Any())
            throw new ArgumentException($"--write-test-snapshot {dir}: the folder is not empty; give a new or empty folder.");
        manual_seed(seed);
        using var noGrad = no_grad();
        void Json(string path, JsonNode node)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(dir, path))!);
            File.WriteAllText(Path.Combine(dir, path), node.ToJsonString(Indented));
        }
        void Weights(string path, Dictionary<string, Tensor> tensors)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(dir, path))!);
            // Fresh values for every tensor (a module's init may leave some unset): norm scales near 1, the rest small,
            // and none at exactly 0 or 1, so every tensor matters in the parity checks.
            foreach (var (name, t) in tensors)
            {
                bool norm = name.Contains("norm", StringComparison.Ordinal);
                var noise = randn_like(t) * (norm ? 0.05 : 0.1);
                t.copy_(norm && name.EndsWith(".weight", StringComparison.Ordinal) ? noise + 1 : noise);
            }
            Safetensors.SaveStateDict(Path.Combine(dir, path), tensors);
        }

        Json("model_index.json", new JsonObject
        {
            ["_class_name"] = "GlmImagePipeline", ["_diffusers_version"] = "0.36.0",
            ["processor"] = Pair("transformers", "GlmImageProcessor"), ["scheduler"] = Pair("diffusers", "FlowMatchEulerDiscreteScheduler"),
            ["text_encoder"] = Pair("transformers", "T5EncoderModel"), ["tokenizer"] = Pair("transformers", "ByT5Tokenizer"),
            ["transformer"] = Pair("diffusers", "GlmImageTransformer2DModel"), ["vae"] = Pair("diffusers", "AutoencoderKL"),
            ["vision_language_encoder"] = Pair("transformers", "GlmImageForConditionalGeneration"),
        });

        var text = new GlmImageTextConfig { VocabSize = 16800, VisionVocabSize = 16512, Hidden = 64, Intermediate = 96, Layers = 2, Heads = 2, KvHeads = 1, MropeSection = [2, 3, 3] };
        Json("vision_language_encoder/config.json", new JsonObject
        {
            ["model_type"] = "glm_image", ["architectures"] = new JsonArray("GlmImageForConditionalGeneration"),
            ["image_token_id"] = 16600, ["image_start_token_id"] = 16384, ["image_end_token_id"] = 16385, ["tie_word_embeddings"] = false,
            ["text_config"] = new JsonObject
            {
                ["model_type"] = "glm_image_text", ["vocab_size"] = text.VocabSize, ["vision_vocab_size"] = text.VisionVocabSize,
                ["hidden_size"] = text.Hidden, ["intermediate_size"] = text.Intermediate, ["num_hidden_layers"] = text.Layers,
                ["num_attention_heads"] = text.Heads, ["num_key_value_heads"] = text.KvHeads, ["hidden_act"] = "silu",
                ["max_position_embeddings"] = 4096, ["rms_norm_eps"] = 1e-5, ["attention_bias"] = true, ["attention_dropout"] = 0.0,
                ["rope_parameters"] = new JsonObject { ["rope_type"] = "default", ["rope_theta"] = 10000.0, ["partial_rotary_factor"] = 0.5, ["mrope_section"] = new JsonArray(2, 3, 3) },
            },
            ["vision_config"] = new JsonObject { ["depth"] = 1, ["hidden_size"] = 32, ["num_heads"] = 2, ["intermediate_size"] = 64, ["patch_size"] = 16, ["image_size"] = 256, ["in_channels"] = 3 },
            ["vq_config"] = new JsonObject { ["embed_dim"] = 16, ["num_embeddings"] = 16384, ["latent_channels"] = 32, ["in_channels"] = 3 },
        });
        Json("vision_language_encoder/generation_config.json", new JsonObject { ["do_sample"] = true, ["temperature"] = 0.9, ["top_p"] = 0.75, ["top_k"] = 16512, ["eos_token_id"] = 16385 });
        using (var ar = new GlmImageTextModel(text))
        {
            var w = ar.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.clone());
            w["model.visual.patch_embed.proj.weight"] = randn(32, 3, 16, 16) * 0.02;
            w["model.visual.patch_embed.proj.bias"] = zeros(32);
            w["model.vqmodel.quant_conv.weight"] = randn(16, 32, 1, 1) * 0.02;
            w["model.vqmodel.quant_conv.bias"] = zeros(16);
            w["model.vqmodel.quantize.embedding.weight"] = randn(16384, 16);
            Weights("vision_language_encoder/model.safetensors", w);
        }

        var ditConfig = new JsonObject
        {
            ["_class_name"] = "GlmImageTransformer2DModel", ["_diffusers_version"] = "0.36.0", ["patch_size"] = 2, ["in_channels"] = 16, ["out_channels"] = 16,
            ["num_layers"] = 2, ["attention_head_dim"] = 16, ["num_attention_heads"] = 2, ["text_embed_dim"] = 32, ["time_embed_dim"] = 32,
            ["condition_dim"] = 16, ["prior_vq_quantizer_codebook_size"] = 16384,
        };
        Json("transformer/config.json", ditConfig);
        using (var dit = new GlmImageDit(GlmImageDitConfig.Parse(JsonNode.Parse(ditConfig.ToJsonString())!.AsObject(), "test snapshot")))
            Weights("transformer/diffusion_pytorch_model.safetensors", dit.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.clone()));

        var vaeConfig = new JsonObject
        {
            ["_class_name"] = "AutoencoderKL", ["_diffusers_version"] = "0.36.0", ["in_channels"] = 3, ["out_channels"] = 3,
            ["down_block_types"] = new JsonArray("DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"),
            ["up_block_types"] = new JsonArray("UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"),
            ["block_out_channels"] = new JsonArray(8, 8, 16, 16), ["layers_per_block"] = 1, ["act_fn"] = "silu", ["latent_channels"] = 16,
            ["norm_num_groups"] = 4, ["sample_size"] = 64, ["scaling_factor"] = 1.0, ["shift_factor"] = null,
            ["latents_mean"] = new JsonArray(Enumerable.Range(0, 16).Select(i => (JsonNode)Math.Round(0.05 * (i - 8), 3)).ToArray()),
            ["latents_std"] = new JsonArray(Enumerable.Range(0, 16).Select(i => (JsonNode)Math.Round(0.8 + 0.02 * i, 3)).ToArray()),
            ["force_upcast"] = true, ["use_quant_conv"] = false, ["use_post_quant_conv"] = false, ["mid_block_add_attention"] = false,
        };
        Json("vae/config.json", vaeConfig);
        using (var vae = new GlmImageVaeDecoder(GlmImageVaeConfig.Parse(JsonNode.Parse(vaeConfig.ToJsonString())!.AsObject(), "test snapshot")))
        {
            var w = vae.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.clone());
            w["encoder.conv_in.weight"] = randn(8, 3, 3, 3) * 0.1;
            w["encoder.conv_in.bias"] = zeros(8);
            Weights("vae/diffusion_pytorch_model.safetensors", w);
        }

        // ByT5-style encoder at small widths (exported once the glyph-encoder stage is built).
        int dModel = 32, dKv = 8, heads = 4, dFf = 48, t5Layers = 2;
        Json("text_encoder/config.json", new JsonObject
        {
            ["architectures"] = new JsonArray("T5EncoderModel"), ["model_type"] = "t5", ["d_model"] = dModel, ["d_kv"] = dKv, ["d_ff"] = dFf,
            ["num_heads"] = heads, ["num_layers"] = t5Layers, ["vocab_size"] = 384, ["feed_forward_proj"] = "gated-gelu",
            ["layer_norm_epsilon"] = 1e-6, ["relative_attention_num_buckets"] = 32, ["relative_attention_max_distance"] = 128, ["is_encoder_decoder"] = false,
        });
        var t5 = new Dictionary<string, Tensor> { ["shared.weight"] = randn(384, dModel), ["encoder.final_layer_norm.weight"] = ones(dModel) };
        for (int i = 0; i < t5Layers; i++)
        {
            var p = $"encoder.block.{i}.layer.";
            foreach (var n in new[] { "q", "k", "v" }) t5[$"{p}0.SelfAttention.{n}.weight"] = randn(heads * dKv, dModel) * 0.1;
            t5[$"{p}0.SelfAttention.o.weight"] = randn(dModel, heads * dKv) * 0.1;
            t5[$"{p}0.layer_norm.weight"] = ones(dModel);
            t5[$"{p}1.DenseReluDense.wi_0.weight"] = randn(dFf, dModel) * 0.1;
            t5[$"{p}1.DenseReluDense.wi_1.weight"] = randn(dFf, dModel) * 0.1;
            t5[$"{p}1.DenseReluDense.wo.weight"] = randn(dModel, dFf) * 0.1;
            t5[$"{p}1.layer_norm.weight"] = ones(dModel);
        }
        t5["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"] = randn(32, heads) * 0.1;
        Weights("text_encoder/model.safetensors", t5);

        Json("scheduler/scheduler_config.json", new JsonObject
        {
            ["_class_name"] = "FlowMatchEulerDiscreteScheduler", ["num_train_timesteps"] = 1000, ["use_dynamic_shifting"] = true,
            ["base_shift"] = 0.25, ["max_shift"] = 0.75, ["base_image_seq_len"] = 256, ["max_image_seq_len"] = 4096, ["time_shift_type"] = "linear",
        });
        Json("processor/processor_config.json", new JsonObject { ["processor_class"] = "GlmImageProcessor" });
        Json("processor/tokenizer_config.json", new JsonObject { ["tokenizer_class"] = "PreTrainedTokenizerFast", ["note"] = "test snapshot: a byte-level BPE over single bytes; the real snapshot carries GLM's tokenizer" });
        Json("processor/tokenizer.json", ByteLevelTokenizer(firstTextId: text.VisionVocabSize));
        Json("tokenizer/tokenizer_config.json", new JsonObject { ["tokenizer_class"] = "ByT5Tokenizer", ["extra_ids"] = 125, ["eos_token"] = "</s>", ["pad_token"] = "<pad>", ["unk_token"] = "<unk>" });
    }

    private static JsonArray Pair(string library, string cls) => new(library, cls);

    /// <summary>
    /// A tokenizer.json in Hugging Face's format: byte-level BPE whose vocabulary is the 256 byte symbols (GPT-2's
    /// byte-to-character map) with no merges, text ids from <paramref name="firstTextId"/>, and GLM-Image's special
    /// tokens at their official ids for the image markers (16384, 16385) and after the bytes for the grid markers.
    /// </summary>
    private static JsonObject ByteLevelTokenizer(int firstTextId)
    {
        var vocab = new JsonObject();
        int id = firstTextId;
        foreach (var symbol in ByteSymbols()) vocab[symbol] = id++;
        JsonObject Added(int tokenId, string content) => new() { ["id"] = tokenId, ["content"] = content, ["special"] = true, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false, ["normalized"] = false };
        return new JsonObject
        {
            ["version"] = "1.0",
            ["added_tokens"] = new JsonArray(Added(16384, "<|dit_token_16384|>"), Added(16385, "<|dit_token_16385|>"), Added(id, "<sop>"), Added(id + 1, "<eop>"), Added(id + 2, "<|image|>")),
            ["normalizer"] = null,
            ["pre_tokenizer"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = true },
            ["model"] = new JsonObject { ["type"] = "BPE", ["vocab"] = vocab, ["merges"] = new JsonArray() },
        };
    }

    /// <summary>GPT-2's byte → printable character map, in byte order.</summary>
    private static IEnumerable<string> ByteSymbols()
    {
        var printable = Enumerable.Range('!', '~' - '!' + 1).Concat(Enumerable.Range(0xA1, 0xAC - 0xA1 + 1)).Concat(Enumerable.Range(0xAE, 0xFF - 0xAE + 1)).ToHashSet();
        int extra = 0;
        for (int b = 0; b < 256; b++) yield return ((char)(printable.Contains(b) ? b : 256 + extra++)).ToString();
    }
}
