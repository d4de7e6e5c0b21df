using Tessera.Models.Layers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Tessera.Models.Dit;

/// <summary>
/// One DiT block with AdaLN-Zero: the conditioning vector c gives shift, scale and gate for the attention and MLP
/// branches; the modulation layer starts at zero so every block starts as the identity.
/// x (B, N, D), c (B, D), mask (B, 1, 1, N) → (B, N, D).
/// </summary>
public sealed class DitBlock : nn.Module<Tensor, Tensor>
{
    public readonly LayerNorm norm1, norm2;
    public readonly Attention attn;
    public readonly Linear mlp_fc1, mlp_fc2, adaLN_modulation;

    public DitBlock(DitConfig c) : base(nameof(DitBlock))
    {
        norm1 = nn.LayerNorm(c.Hidden, eps: 1e-6, elementwise_affine: false);
        norm2 = nn.LayerNorm(c.Hidden, eps: 1e-6, elementwise_affine: false);
        attn = new Attention(c.Hidden, c.Heads, c.Heads, qkNorm: true, bias: true);
        mlp_fc1 = nn.Linear(c.Hidden, c.Hidden * c.MlpRatio);
        mlp_fc2 = nn.Linear(c.Hidden * c.MlpRatio, c.Hidden);
        adaLN_modulation = nn.Linear(c.Hidden, 6 * c.Hidden);
        using (no_grad())
        {
            adaLN_modulation.weight!.zero_();
            adaLN_modulation.bias!.zero_();
        }
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => throw new NotSupportedException("Use Forward with the conditioning vector.");

    public Tensor Forward(Tensor x, Tensor c, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        var m = adaLN_modulation.forward(nn.functional.silu(c)).unsqueeze(1).chunk(6, -1); // 6 x (B, 1, D)
        var h = norm1.forward(x) * (1 + m[1]) + m[0];
        x = x + m[2] * attn.Forward(h, null, causal: false, null, null, out _, out _, mask);
        h = norm2.forward(x) * (1 + m[4]) + m[3];
        x = x + m[5] * mlp_fc2.forward(nn.functional.gelu(mlp_fc1.forward(h), GELU.Approximate.tanh));
        return x.MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Flow-matching DiT decoder: noisy image x_t (B, 3, S, S), time t (B) in [0, 1], prior visual tokens
/// (B, G, G) with G = S / Patch (id CodebookSize = none), glyph ids (B, L) (0 = padding, byte b = b + 1) and, with
/// <see cref="DitConfig.GlyphImage"/>, the glyph image (B, 1, S, S) in [0, 1] (zeros = none) → predicted velocity (B, 3, S, S), where x_t = (1 - t) x_0 + t ε and the velocity is ε - x_0.
/// </summary>
public sealed class DitDecoder : nn.Module<Tensor, Tensor>
{
    public readonly Conv2d patch_embed;
    public readonly Parameter pos_embed, glyph_pos_embed;
    public readonly Embedding prior_embed, glyph_embed;
    public readonly TimestepEmbedding time_embed;
    public readonly ModuleList<DitBlock> blocks;
    public readonly LayerNorm final_norm;
    public readonly Linear final_modulation, final_proj;

    public DitDecoder(DitConfig config) : base(nameof(DitDecoder))
    {
        Config = config;
        int d = config.Hidden, n = config.TokenGrid * config.TokenGrid;
        patch_embed = nn.Conv2d(config.InputChannels, d, config.Patch, stride: config.Patch);
        pos_embed = nn.Parameter(randn(1, n, d) * 0.02f);
        prior_embed = nn.Embedding(config.CodebookSize + 1, d);
        glyph_embed = nn.Embedding(257, d);
        glyph_pos_embed = nn.Parameter(randn(1, config.MaxGlyphs, d) * 0.02f);
        time_embed = new TimestepEmbedding(d);
        blocks = nn.ModuleList(Enumerable.Range(0, config.Layers).Select(_ => new DitBlock(config)).ToArray());
        final_norm = nn.LayerNorm(d, eps: 1e-6, elementwise_affine: false);
        final_modulation = nn.Linear(d, 2 * d);
        final_proj = nn.Linear(d, config.Patch * config.Patch * 3);
        using (no_grad())
        {
            final_modulation.weight!.zero_();
            final_modulation.bias!.zero_();
            final_proj.weight!.zero_();
            final_proj.bias!.zero_();
        }
        RegisterComponents();
    }

    public DitConfig Config { get; }

    public override Tensor forward(Tensor x) => throw new NotSupportedException("Use Forward with time, prior and glyphs.");

    public Tensor Forward(Tensor xt, Tensor t, Tensor prior, Tensor glyphs, Tensor? glyphImage = null)
    {
        using var scope = NewDisposeScope();
        long b = xt.shape[0];
        int g = Config.TokenGrid, p = Config.Patch, lg = (int)glyphs.shape[1];
        if (Config.GlyphImage != glyphImage is not null)
            throw new ArgumentException(Config.GlyphImage ? "This decoder is conditioned on a glyph image; pass one (zeros for none)." : "This decoder takes no glyph image.");
        var input = glyphImage is null ? xt : cat([xt, glyphImage], 1);
        var image = patch_embed.forward(input).flatten(2).transpose(1, 2);       // (B, G*G, D)
        image = image + pos_embed + prior_embed.forward(prior.flatten(1));       // prior (B, G*G) ids
        var glyph = glyph_embed.forward(glyphs) + glyph_pos_embed.narrow(1, 0, lg); // (B, L, D)
        var x = cat([glyph, image], 1);                                           // (B, L + G*G, D)
        var keyValid = cat([glyphs.ne(0), ones(b, g * g, dtype: ScalarType.Bool, device: xt.device)], 1);
        var mask = keyValid.view(b, 1, 1, -1);
        var c = time_embed.forward(t);                                            // (B, D)
        foreach (var block in blocks) x = block.Forward(x, c, mask);
        x = x.narrow(1, lg, g * g);                                               // image tokens only
        var m = final_modulation.forward(nn.functional.silu(c)).unsqueeze(1).chunk(2, -1);
        x = final_proj.forward(final_norm.forward(x) * (1 + m[1]) + m[0]);        // (B, G*G, p*p*3)
        var y = x.view(b, g, g, p, p, 3).permute(0, 5, 1, 3, 2, 4).reshape(b, 3, g * p, g * p); // (B, 3, S, S)
        return y.MoveToOuterDisposeScope();
    }

}
