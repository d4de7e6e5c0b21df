using System.Text.Json.Nodes;
using Tessera.Export.Checkpoints;

namespace Tessera.GlmImage;

/// <summary>
/// The DiT decoder's configuration: <c>transformer/config.json</c> (diffusers' GlmImageTransformer2DModel). Defaults
/// are GLM-Image's published sizes: patch 2 over 16 latent channels, 30 layers of 32 heads × 128, glyph states 1472
/// wide (ByT5), time embedding 512, size/crop conditions 256 each, prior tokens over a 16384-code book.
/// </summary>
public sealed record GlmImageDitConfig
{
    public int PatchSize { get; init; } = 2;
    public int InChannels { get; init; } = 16;
    public int OutChannels { get; init; } = 16;
    public int Layers { get; init; } = 30;
    public int HeadDim { get; init; } = 128;
    public int Heads { get; init; } = 32;
    public int TextEmbedDim { get; init; } = 1472;
    public int TimeEmbedDim { get; init; } = 512;
    public int ConditionDim { get; init; } = 256;
    public int CodebookSize { get; init; } = 16384;
    public int? KeptLayers { get; init; }

    public int Hidden => Heads * HeadDim;
    public int LayersBuilt => Math.Min(KeptLayers ?? Layers, Layers);

    private static readonly HashSet<string> Fields =
    [
        "_class_name", "_diffusers_version", "_name_or_path", "patch_size", "in_channels", "out_channels", "num_layers",
        "attention_head_dim", "num_attention_heads", "text_embed_dim", "time_embed_dim", "condition_dim",
        "prior_vq_quantizer_codebook_size",
    ];

    public static GlmImageDitConfig Parse(JsonObject j, string source, int? keepLayers = null)
    {
        try
        {
            return ParseFields(j, source, keepLayers);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            throw new CheckpointException($"{source}: a field has the wrong type or value ({e.Message}); compare it with the official config.");
        }
    }

    private static GlmImageDitConfig ParseFields(JsonObject j, string source, int? keepLayers)
    {
        foreach (var (key, _) in j)
            if (!Fields.Contains(key)) throw new CheckpointException($"{source}: field \"{key}\" is not supported by the GLM-Image DiT builder.");
        int Int(string name, int fallback) => j[name]?.GetValue<int>() ?? fallback;
        var c = new GlmImageDitConfig
        {
            PatchSize = Int("patch_size", 2), InChannels = Int("in_channels", 16), OutChannels = Int("out_channels", 16),
            Layers = Int("num_layers", 30), HeadDim = Int("attention_head_dim", 128), Heads = Int("num_attention_heads", 32),
            TextEmbedDim = Int("text_embed_dim", 1472), TimeEmbedDim = Int("time_embed_dim", 512), ConditionDim = Int("condition_dim", 256),
            CodebookSize = Int("prior_vq_quantizer_codebook_size", 16384), KeptLayers = keepLayers,
        };
        if (c.HeadDim % 4 != 0) throw new CheckpointException($"{source}: attention_head_dim {c.HeadDim} must be a multiple of 4 (2-D rotary over rows and columns).");
        return c;
    }
}
