using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Tessera.GlmImage;

/// <summary>A projection whose activation follows it (diffusers' GELU / LinearActivation holder): field <c>proj</c>.</summary>
public sealed class ProjectionWithActivation : nn.Module
{
    public ProjectionWithActivation(long inFeatures, long outFeatures) : base(nameof(ProjectionWithActivation))
    {
        proj = nn.Linear(inFeatures, outFeatures);
        RegisterComponents();
    }

    public Linear proj;
}

/// <summary>diffusers' FeedForward layout: <c>net.0.proj</c> (then the activation), <c>net.1</c> (dropout, no weights), <c>net.2</c>.</summary>
public sealed class FeedForwardNet : nn.Module
{
    public FeedForwardNet(long dim, long inner, long outDim, FeedForwardActivation activation) : base(nameof(FeedForwardNet))
    {
        Activation = activation;
        net = nn.ModuleList<nn.Module>(new ProjectionWithActivation(dim, inner), nn.Identity(), nn.Linear(inner, outDim));
        RegisterComponents();
    }

    public FeedForwardActivation Activation { get; }
    public ModuleList<nn.Module> net;
    public Linear First => ((ProjectionWithActivation)net[0]).proj;
    public Linear Last => (Linear)net[2];

    public Tensor Forward(Tensor x)
    {
        var h = First.forward(x);
        h = Activation switch
        {
            FeedForwardActivation.Gelu => nn.functional.gelu(h),
            FeedForwardActivation.GeluTanh => nn.functional.gelu(h, GELU.Approximate.tanh),
            _ => nn.functional.silu(h),
        };
        return Last.forward(h);
    }
}

public enum FeedForwardActivation { Gelu, GeluTanh, Silu }

public sealed class TimestepMlp : nn.Module
{
    public TimestepMlp(long inFeatures, long outFeatures) : base(nameof(TimestepMlp))
    {
        linear_1 = nn.Linear(inFeatures, outFeatures);
        linear_2 = nn.Linear(outFeatures, outFeatures);
        RegisterComponents();
    }

    public Linear linear_1, linear_2;

    public Tensor Forward(Tensor x) => linear_2.forward(nn.functional.silu(linear_1.forward(x)));
}

public sealed class TimeConditionEmbedding : nn.Module
{
    public TimeConditionEmbedding(GlmImageDitConfig c) : base(nameof(TimeConditionEmbedding))
    {
        timestep_embedder = new TimestepMlp(c.TimeEmbedDim, c.TimeEmbedDim);
        condition_embedder = new TimestepMlp(4 * c.ConditionDim, c.TimeEmbedDim);
        RegisterComponents();
    }

    public TimestepMlp timestep_embedder, condition_embedder;
}

public sealed class AdaLinear : nn.Module
{
    public AdaLinear(long inFeatures, long outFeatures) : base(nameof(AdaLinear))
    {
        linear = nn.Linear(inFeatures, outFeatures);
        RegisterComponents();
    }

    public Linear linear;
}

public sealed class GlmImageDitAttention : nn.Module
{
    public GlmImageDitAttention(GlmImageDitConfig c) : base(nameof(GlmImageDitAttention))
    {
        to_q = nn.Linear(c.Hidden, c.Hidden);
        to_k = nn.Linear(c.Hidden, c.Hidden);
        to_v = nn.Linear(c.Hidden, c.Hidden);
        to_out = nn.ModuleList<nn.Module>(nn.Linear(c.Hidden, c.Hidden), nn.Identity());
        RegisterComponents();
    }

    public Linear to_q, to_k, to_v;
    public ModuleList<nn.Module> to_out;
    public Linear Out => (Linear)to_out[0];
}

public sealed class GlmImageDitBlock : nn.Module
{
    public GlmImageDitBlock(GlmImageDitConfig c) : base(nameof(GlmImageDitBlock))
    {
        norm1 = new AdaLinear(c.TimeEmbedDim, 12L * c.Hidden);
        attn1 = new GlmImageDitAttention(c);
        ff = new FeedForwardNet(c.Hidden, 4L * c.Hidden, c.Hidden, FeedForwardActivation.GeluTanh);
        RegisterComponents();
    }

    public AdaLinear norm1;
    public GlmImageDitAttention attn1;
    public FeedForwardNet ff;
}

/// <summary>
/// GLM-Image's DiT decoder (diffusers' GlmImageTransformer2DModel) with the official tensor names:
/// <c>image_projector.proj</c>, <c>glyph_projector.net.{0.proj,2}</c>, <c>prior_token_embedding</c>,
/// <c>prior_projector.net.{0.proj,2}</c>, <c>time_condition_embed.(timestep|condition)_embedder.linear_{1,2}</c>,
/// <c>transformer_blocks.{i}.(norm1.linear | attn1.to_(q|k|v|out.0) | ff.net.{0.proj,2})</c>, <c>norm_out.linear</c>, <c>proj_out</c>.
/// One stream of glyph tokens then image tokens per block, AdaLN with 12 chunks (image and glyph interleaved),
/// QK LayerNorm, 2-D rotary on image tokens only, the same feed-forward for both streams.
/// Shapes: latents (B, C, h, w); glyph states (B, Lg, 1472); prior ids and drop mask (B, h/2 · w/2);
/// timestep (B); target size and crop (B, 2); velocity (B, C, h, w).
/// </summary>
public sealed class GlmImageDit : nn.Module
{
    public const double NormEps = 1e-5;

    public GlmImageDit(GlmImageDitConfig c) : base(nameof(GlmImageDit))
    {
        Config = c;
        int p2 = c.PatchSize * c.PatchSize;
        image_projector = new ProjectionWithActivation(c.InChannels * p2, c.Hidden);
        glyph_projector = new FeedForwardNet(c.TextEmbedDim, c.Hidden, c.Hidden, FeedForwardActivation.Gelu);
        prior_token_embedding = nn.Embedding(c.CodebookSize, c.Hidden);
        prior_projector = new FeedForwardNet(c.Hidden, c.Hidden, c.Hidden, FeedForwardActivation.Silu);
        time_condition_embed = new TimeConditionEmbedding(c);
        transformer_blocks = nn.ModuleList(Enumerable.Range(0, c.LayersBuilt).Select(_ => new GlmImageDitBlock(c)).ToArray());
        norm_out = new AdaLinear(c.TimeEmbedDim, 2L * c.Hidden);
        proj_out = nn.Linear(c.Hidden, c.OutChannels * p2);
        RegisterComponents();
    }

    public GlmImageDitConfig Config { get; }
    public ProjectionWithActivation image_projector;
    public FeedForwardNet glyph_projector, prior_projector;
    public Embedding prior_token_embedding;
    public TimeConditionEmbedding time_condition_embed;
    public ModuleList<GlmImageDitBlock> transformer_blocks;
    public AdaLinear norm_out;
    public Linear proj_out;

    /// <summary>Sinusoidal features (B, dim) of t (B): [cos(t f), sin(t f)], f_k = 10000^(−k / (dim/2)).</summary>
    public static Tensor Sinusoid(Tensor t, int dim)
    {
        int half = dim / 2;
        var f = tensor(Enumerable.Range(0, half).Select(k => (float)Math.Exp(-Math.Log(10000.0) * k / half)).ToArray());
        var args = t.to(ScalarType.Float32).unsqueeze(-1).mul(f);
        return cat([args.cos(), args.sin()], -1);
    }

    /// <summary>2-D rotary cos/sin (1, 1, Hp·Wp, Dh): per row r and column c, [r·f ; c·f] duplicated, f_k = 10000^(−2k/(Dh/2)).</summary>
    public static (Tensor Cos, Tensor Sin) Rotary(long rows, long cols, int headDim)
    {
        int axisDim = headDim / 2;
        var f = tensor(Enumerable.Range(0, axisDim / 2).Select(k => (float)Math.Pow(10000.0, -(2.0 * k) / axisDim)).ToArray());
        var r = arange(rows, dtype: ScalarType.Float32).unsqueeze(-1).mul(f);          // (Hp, Dh/4)
        var cc = arange(cols, dtype: ScalarType.Float32).unsqueeze(-1).mul(f);         // (Wp, Dh/4)
        var phi = cat([r.unsqueeze(1).expand(rows, cols, axisDim / 2), cc.unsqueeze(0).expand(rows, cols, axisDim / 2)], -1).reshape(rows * cols, axisDim);
        var emb = cat([phi, phi], -1).view(1, 1, rows * cols, headDim);
        return (emb.cos(), emb.sin());
    }

    private static Tensor RotateHalf(Tensor x)
    {
        long half = x.shape[^1] / 2;
        return cat([x.narrow(-1, half, half).neg(), x.narrow(-1, 0, half)], -1);
    }

    private static Tensor Norm(Tensor x) => nn.functional.layer_norm(x, [x.shape[^1]], null, null, NormEps);

    public Tensor Forward(Tensor latents, Tensor glyphStates, Tensor priorIds, Tensor priorDrop, Tensor timestep, Tensor targetSize, Tensor crop)
    {
        var c = Config;
        long b = latents.shape[0], h = latents.shape[2], w = latents.shape[3];
        int p = c.PatchSize;
        long hp = h / p, wp = w / p, n = hp * wp;
        var patches = latents.view(b, c.InChannels, hp, p, wp, p).permute(0, 2, 4, 1, 3, 5).reshape(b, n, c.InChannels * p * p);
        var x = image_projector.proj.forward(patches);                                                  // (B, N, D)
        var prior = prior_token_embedding.forward(priorIds).masked_fill(priorDrop.unsqueeze(-1), 0f);
        x = x.add(prior_projector.Forward(prior));
        var text = glyph_projector.Forward(glyphStates);                                                // (B, Lg, D)
        long lg = text.shape[1];

        var tEmb = time_condition_embed.timestep_embedder.Forward(Sinusoid(timestep, c.TimeEmbedDim));
        var cond = cat([Sinusoid(crop.select(1, 0), c.ConditionDim), Sinusoid(crop.select(1, 1), c.ConditionDim),
                        Sinusoid(targetSize.select(1, 0), c.ConditionDim), Sinusoid(targetSize.select(1, 1), c.ConditionDim)], -1);
        var temb = nn.functional.silu(tEmb.add(time_condition_embed.condition_embedder.Forward(cond)));   // (B, 512)
        var (cos, sin) = Rotary(hp, wp, c.HeadDim);

        foreach (var block in transformer_blocks)
        {
            var m = block.norm1.linear.forward(temb).unsqueeze(1).chunk(12, -1);                         // 12 x (B, 1, D)
            var xn = Norm(x).mul(m[2].add(1)).add(m[0]);
            var tn = Norm(text).mul(m[3].add(1)).add(m[1]);
            var joint = cat([tn, xn], 1);                                                             // glyph tokens first
            Tensor Heads(Linear proj) => Norm(proj.forward(joint).view(b, lg + n, c.Heads, c.HeadDim)).transpose(1, 2); // QK-norm over Dh
            var q = Heads(block.attn1.to_q);
            var k = Heads(block.attn1.to_k);
            var v = block.attn1.to_v.forward(joint).view(b, lg + n, c.Heads, c.HeadDim).transpose(1, 2);
            Tensor Rope(Tensor t) => cat([t.narrow(2, 0, lg), t.narrow(2, lg, n).mul(cos).add(RotateHalf(t.narrow(2, lg, n)).mul(sin))], 2);
            q = Rope(q);
            k = Rope(k);
            var y = q.matmul(k.transpose(2, 3)).mul(1.0 / Math.Sqrt(c.HeadDim)).softmax(-1).matmul(v).transpose(1, 2).reshape(b, lg + n, c.Hidden);
            y = block.attn1.Out.forward(y);
            text = text.add(m[5].mul(y.narrow(1, 0, lg)));
            x = x.add(m[4].mul(y.narrow(1, lg, n)));
            x = x.add(m[10].mul(block.ff.Forward(Norm(x).mul(m[8].add(1)).add(m[6]))));
            text = text.add(m[11].mul(block.ff.Forward(Norm(text).mul(m[9].add(1)).add(m[7]))));
        }
        var fm = norm_out.linear.forward(temb).unsqueeze(1).chunk(2, -1);                                 // scale, shift
        var outTokens = proj_out.forward(Norm(x).mul(fm[0].add(1)).add(fm[1]));                           // (B, N, C·p·p)
        return outTokens.view(b, hp, wp, c.OutChannels, p, p).permute(0, 3, 1, 4, 2, 5).reshape(b, c.OutChannels, h, w);
    }
}
