using System.Text.Json.Nodes;
using Tessera.Export.Checkpoints;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Tessera.GlmImage;

/// <summary>
/// The VAE's configuration (<c>vae/config.json</c>, diffusers' AutoencoderKL) as far as decoding needs it. GLM-Image
/// de-normalises latents per channel with <c>latents_mean</c> / <c>latents_std</c> (16 values each) before decoding;
/// a config without them falls back to diffusers' <c>z / scaling_factor + shift_factor</c>.
/// </summary>
public sealed record GlmImageVaeConfig
{
    public int LatentChannels { get; init; } = 16;
    public int OutChannels { get; init; } = 3;
    public int[] BlockOutChannels { get; init; } = [128, 256, 512, 512];
    public int LayersPerBlock { get; init; } = 2;
    public int NormGroups { get; init; } = 32;
    public bool MidBlockAttention { get; init; } = true;
    public bool PostQuantConv { get; init; } = true;
    public double ScalingFactor { get; init; } = 0.18215;
    public double ShiftFactor { get; init; }
    public float[]? LatentsMean { get; init; }
    public float[]? LatentsStd { get; init; }

    /// <summary>Pixels per latent along each side: 2^(blocks − 1).</summary>
    public int ScaleFactor => 1 << (BlockOutChannels.Length - 1);

    private static readonly HashSet<string> Fields =
    [
        "_class_name", "_diffusers_version", "_name_or_path", "in_channels", "out_channels", "down_block_types", "up_block_types",
        "block_out_channels", "layers_per_block", "act_fn", "latent_channels", "norm_num_groups", "sample_size", "scaling_factor",
        "shift_factor", "latents_mean", "latents_std", "force_upcast", "use_quant_conv", "use_post_quant_conv", "mid_block_add_attention",
    ];

    public static GlmImageVaeConfig Parse(JsonObject j, string source)
    {
        try
        {
            return ParseFields(j, source);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            throw new CheckpointException($"{source}: a field has the wrong type or value ({e.Message}); compare it with the official config.");
        }
    }

    private static GlmImageVaeConfig ParseFields(JsonObject j, string source)
    {
        foreach (var (key, _) in j)
            if (!Fields.Contains(key)) throw new CheckpointException($"{source}: field \"{key}\" is not supported by the VAE decoder builder.");
        if (j["act_fn"]?.GetValue<string>() is { } act && act != "silu") throw new CheckpointException($"{source}: act_fn {act} is not supported (the decoder uses silu).");
        if (j["up_block_types"] is JsonArray ups && ups.Any(u => u?.GetValue<string>() != "UpDecoderBlock2D"))
            throw new CheckpointException($"{source}: up_block_types other than UpDecoderBlock2D are not supported.");
        float[]? Floats(string k) => j[k] is JsonArray a ? a.Select(x => x!.GetValue<float>()).ToArray() : null;
        var c = new GlmImageVaeConfig
        {
            LatentChannels = j["latent_channels"]?.GetValue<int>() ?? 4,
            OutChannels = j["out_channels"]?.GetValue<int>() ?? 3,
            BlockOutChannels = j["block_out_channels"] is JsonArray b ? b.Select(x => x!.GetValue<int>()).ToArray() : [64],
            LayersPerBlock = j["layers_per_block"]?.GetValue<int>() ?? 1,
            NormGroups = j["norm_num_groups"]?.GetValue<int>() ?? 32,
            MidBlockAttention = j["mid_block_add_attention"]?.GetValue<bool>() ?? true,
            PostQuantConv = j["use_post_quant_conv"]?.GetValue<bool>() ?? true,
            ScalingFactor = j["scaling_factor"]?.GetValue<double>() ?? 0.18215,
            ShiftFactor = j["shift_factor"]?.GetValue<double?>() ?? 0,
            LatentsMean = Floats("latents_mean"),
            LatentsStd = Floats("latents_std"),
        };
        if ((c.LatentsMean is null) != (c.LatentsStd is null) || (c.LatentsMean is { } m && (m.Length != c.LatentChannels || c.LatentsStd!.Length != c.LatentChannels)))
            throw new CheckpointException($"{source}: latents_mean and latents_std must both be given, with latent_channels ({c.LatentChannels}) values each.");
        if (c.BlockOutChannels.Any(ch => ch % c.NormGroups != 0))
            throw new CheckpointException($"{source}: every block_out_channels entry must be a multiple of norm_num_groups {c.NormGroups}.");
        return c;
    }
}

/// <summary>diffusers' ResnetBlock2D without a time embedding: h = conv2(silu(norm2(conv1(silu(norm1(x)))))); out = shortcut(x) + h.</summary>
public sealed class VaeResnet : nn.Module
{
    public VaeResnet(long inChannels, long outChannels, int groups) : base(nameof(VaeResnet))
    {
        norm1 = nn.GroupNorm(groups, inChannels, 1e-6);
        conv1 = nn.Conv2d(inChannels, outChannels, 3, padding: 1);
        norm2 = nn.GroupNorm(groups, outChannels, 1e-6);
        conv2 = nn.Conv2d(outChannels, outChannels, 3, padding: 1);
        if (inChannels != outChannels) conv_shortcut = nn.Conv2d(inChannels, outChannels, 1);
        RegisterComponents();
    }

    public GroupNorm norm1, norm2;
    public Conv2d conv1, conv2;
    public Conv2d? conv_shortcut;

    public Tensor Forward(Tensor x)
    {
        var h = conv1.forward(nn.functional.silu(norm1.forward(x)));
        h = conv2.forward(nn.functional.silu(norm2.forward(h)));
        return (conv_shortcut?.forward(x) ?? x).add(h);
    }
}

/// <summary>The mid block's single-head self-attention over all positions (group_norm, to_q/k/v, to_out.0; residual).</summary>
public sealed class VaeAttention : nn.Module
{
    public VaeAttention(long channels, int groups) : base(nameof(VaeAttention))
    {
        group_norm = nn.GroupNorm(groups, channels, 1e-6);
        to_q = nn.Linear(channels, channels);
        to_k = nn.Linear(channels, channels);
        to_v = nn.Linear(channels, channels);
        to_out = nn.ModuleList<nn.Module>(nn.Linear(channels, channels), nn.Identity());
        RegisterComponents();
    }

    public GroupNorm group_norm;
    public Linear to_q, to_k, to_v;
    public ModuleList<nn.Module> to_out;
    public Linear Out => (Linear)to_out[0];

    public Tensor Forward(Tensor x)
    {
        long b = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3];
        var t = group_norm.forward(x).view(b, c, h * w).transpose(1, 2);                // (B, HW, C)
        var q = to_q.forward(t);
        var k = to_k.forward(t);
        var v = to_v.forward(t);
        var y = q.matmul(k.transpose(1, 2)).mul(1.0 / Math.Sqrt(c)).softmax(-1).matmul(v);
        return Out.forward(y).transpose(1, 2).reshape(b, c, h, w).add(x);
    }
}

public sealed class VaeMidBlock : nn.Module
{
    public VaeMidBlock(long channels, int groups, bool attention) : base(nameof(VaeMidBlock))
    {
        resnets = nn.ModuleList(new VaeResnet(channels, channels, groups), new VaeResnet(channels, channels, groups));
        attentions = attention ? nn.ModuleList(new VaeAttention(channels, groups)) : nn.ModuleList<VaeAttention>();
        RegisterComponents();
    }

    public ModuleList<VaeResnet> resnets;
    public ModuleList<VaeAttention> attentions;
}

public sealed class VaeUpsampler : nn.Module
{
    public VaeUpsampler(long channels) : base(nameof(VaeUpsampler))
    {
        conv = nn.Conv2d(channels, channels, 3, padding: 1);
        RegisterComponents();
    }

    public Conv2d conv;
}

public sealed class VaeUpBlock : nn.Module
{
    public VaeUpBlock(long inChannels, long outChannels, int resnetCount, int groups, bool upsample) : base(nameof(VaeUpBlock))
    {
        resnets = nn.ModuleList(Enumerable.Range(0, resnetCount).Select(j => new VaeResnet(j == 0 ? inChannels : outChannels, outChannels, groups)).ToArray());
        upsamplers = upsample ? nn.ModuleList(new VaeUpsampler(outChannels)) : nn.ModuleList<VaeUpsampler>();
        RegisterComponents();
    }

    public ModuleList<VaeResnet> resnets;
    public ModuleList<VaeUpsampler> upsamplers;
}

public sealed class VaeDecoderBody : nn.Module
{
    public VaeDecoderBody(GlmImageVaeConfig c) : base(nameof(VaeDecoderBody))
    {
        var rev = c.BlockOutChannels.Reverse().ToArray();
        conv_in = nn.Conv2d(c.LatentChannels, rev[0], 3, padding: 1);
        mid_block = new VaeMidBlock(rev[0], c.NormGroups, c.MidBlockAttention);
        up_blocks = nn.ModuleList(Enumerable.Range(0, rev.Length)
            .Select(b => new VaeUpBlock(b == 0 ? rev[0] : rev[b - 1], rev[b], c.LayersPerBlock + 1, c.NormGroups, upsample: b < rev.Length - 1)).ToArray());
        conv_norm_out = nn.GroupNorm(c.NormGroups, c.BlockOutChannels[0], 1e-6);
        conv_out = nn.Conv2d(c.BlockOutChannels[0], c.OutChannels, 3, padding: 1);
        RegisterComponents();
    }

    public Conv2d conv_in, conv_out;
    public VaeMidBlock mid_block;
    public ModuleList<VaeUpBlock> up_blocks;
    public GroupNorm conv_norm_out;
}

/// <summary>
/// GLM-Image's VAE decoder (diffusers' AutoencoderKL decode path) with the official names: <c>post_quant_conv</c>
/// (when configured), <c>decoder.conv_in</c>, <c>decoder.mid_block.(resnets.{0,1} | attentions.0)</c>,
/// <c>decoder.up_blocks.{b}.(resnets.{j} | upsamplers.0.conv)</c>, <c>decoder.conv_norm_out</c>, <c>decoder.conv_out</c>.
/// Input: normalised latents (B, C, h, w) as the DiT produces them; the per-channel de-normalisation is part of the
/// module. Output: the image (B, 3, h·s, w·s) in [−1, 1] (not clamped).
/// </summary>
public sealed class GlmImageVaeDecoder : nn.Module
{
    public GlmImageVaeDecoder(GlmImageVaeConfig c) : base(nameof(GlmImageVaeDecoder))
    {
        Config = c;
        if (c.PostQuantConv) post_quant_conv = nn.Conv2d(c.LatentChannels, c.LatentChannels, 1);
        decoder = new VaeDecoderBody(c);
        RegisterComponents();
    }

    public GlmImageVaeConfig Config { get; }
    public Conv2d? post_quant_conv;
    public VaeDecoderBody decoder;

    /// <summary>Per-channel (scale, offset) with z = latents · scale + offset.</summary>
    public (float[] Scale, float[] Offset) Denormalisation()
    {
        var c = Config;
        return c.LatentsMean is { } mean
            ? (c.LatentsStd!, mean)
            : (Enumerable.Repeat((float)(1 / c.ScalingFactor), c.LatentChannels).ToArray(), Enumerable.Repeat((float)c.ShiftFactor, c.LatentChannels).ToArray());
    }

    public static Tensor Upsample2x(Tensor x) => x.repeat_interleave(2, 2).repeat_interleave(2, 3);

    public Tensor Forward(Tensor latents)
    {
        var (scale, offset) = Denormalisation();
        long ch = latents.shape[1];
        var z = latents.mul(tensor(scale).view(1, ch, 1, 1)).add(tensor(offset).view(1, ch, 1, 1));
        if (post_quant_conv is not null) z = post_quant_conv.forward(z);
        var d = decoder;
        var x = d.conv_in.forward(z);
        x = d.mid_block.resnets[0].Forward(x);
        foreach (var a in d.mid_block.attentions) x = a.Forward(x);
        x = d.mid_block.resnets[1].Forward(x);
        foreach (var up in d.up_blocks)
        {
            foreach (var r in up.resnets) x = r.Forward(x);
            foreach (var u in up.upsamplers) x = u.conv.forward(Upsample2x(x));
        }
        return d.conv_out.forward(nn.functional.silu(d.conv_norm_out.forward(x)));
    }
}
