using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Tessera.Models.Vq;

/// <summary>
/// VQ image tokenizer. Encoder: conv stem, <c>Downsamples</c> stride-2 convs, 1x1 projection to CodeDim.
/// Quantizer: encodings and codebook L2-normalised, nearest code by cosine similarity, straight-through gradient.
/// Decoder: the mirror with transposed convs. Images are (B, 3, S, S) in [-1, 1]; codes are (B, G, G) int64.
/// </summary>
public sealed class VqTokenizer : nn.Module<Tensor, Tensor>
{
    public readonly Sequential encoder, decoder;
    public readonly Parameter codebook;
    /// <summary>How often each code was chosen since the last dead-code restart (a buffer, so it is checkpointed).</summary>
    public readonly Tensor usage;

    public VqTokenizer(VqConfig config) : base(nameof(VqTokenizer))
    {
        Config = config;
        int c = config.Channels, c2 = config.Channels * 2;
        var enc = new List<(string, nn.Module<Tensor, Tensor>)> { ("stem", nn.Conv2d(3, c, 3, padding: 1)), ("stem_act", nn.SiLU()) };
        int ch = c;
        for (int i = 0; i < config.Downsamples; i++)
        {
            int next = i == config.Downsamples - 1 ? c2 : c;
            enc.Add(($"down{i}", nn.Conv2d(ch, next, 4, stride: 2, padding: 1)));
            enc.Add(($"down{i}_act", nn.SiLU()));
            enc.Add(($"res{i}", nn.Conv2d(next, next, 3, padding: 1)));
            enc.Add(($"res{i}_act", nn.SiLU()));
            ch = next;
        }
        enc.Add(("proj", nn.Conv2d(ch, config.CodeDim, 1)));
        encoder = nn.Sequential(enc);

        var dec = new List<(string, nn.Module<Tensor, Tensor>)> { ("proj", nn.Conv2d(config.CodeDim, c2, 3, padding: 1)), ("proj_act", nn.SiLU()) };
        ch = c2;
        for (int i = 0; i < config.Downsamples; i++)
        {
            dec.Add(($"res{i}", nn.Conv2d(ch, ch, 3, padding: 1)));
            dec.Add(($"res{i}_act", nn.SiLU()));
            dec.Add(($"up{i}", nn.ConvTranspose2d(ch, c, 4, stride: 2, padding: 1)));
            dec.Add(($"up{i}_act", nn.SiLU()));
            ch = c;
        }
        dec.Add(("out", nn.Conv2d(c, 3, 3, padding: 1)));
        decoder = nn.Sequential(dec);

        codebook = nn.Parameter(nn.functional.normalize(randn(config.CodebookSize, config.CodeDim), dim: 1));
        usage = zeros(config.CodebookSize, dtype: float32); // registered as a buffer by RegisterComponents
        RegisterComponents();
    }

    public VqConfig Config { get; }

    /// <summary>Image (B, 3, S, S) → L2-normalised encodings (B, CodeDim, G, G).</summary>
    public Tensor Encode(Tensor images)
    {
        using var scope = NewDisposeScope();
        return nn.functional.normalize(encoder.forward(images), dim: 1).MoveToOuterDisposeScope();
    }

    /// <summary>Encodings (B, D, G, G) → code indices (B, G, G), by cosine similarity to the normalised codebook.</summary>
    public Tensor NearestCodes(Tensor z)
    {
        using var scope = NewDisposeScope();
        var book = nn.functional.normalize(codebook, dim: 1);         // (K, D)
        var flat = z.permute(0, 2, 3, 1);                              // (B, G, G, D)
        var sim = matmul(flat, book.t());                              // (B, G, G, K)
        return sim.argmax(-1).MoveToOuterDisposeScope();
    }

    /// <summary>Code indices (B, G, G) → quantized vectors (B, D, G, G).</summary>
    public Tensor Lookup(Tensor codes)
    {
        using var scope = NewDisposeScope();
        var book = nn.functional.normalize(codebook, dim: 1);
        return book.index_select(0, codes.flatten()).view(codes.shape[0], codes.shape[1], codes.shape[2], -1) // (B, G, G, D)
            .permute(0, 3, 1, 2).MoveToOuterDisposeScope();
    }

    /// <summary>Image (B, 3, S, S) in [-1, 1] → codes (B, G, G).</summary>
    public Tensor Tokenize(Tensor images)
    {
        using var scope = NewDisposeScope();
        return NearestCodes(Encode(images)).MoveToOuterDisposeScope();
    }

    /// <summary>Codes (B, G, G) → reconstructed image (B, 3, S, S).</summary>
    public Tensor Detokenize(Tensor codes)
    {
        using var scope = NewDisposeScope();
        return decoder.forward(Lookup(codes)).MoveToOuterDisposeScope();
    }

    /// <summary>Reconstruction with a straight-through quantizer: image → image.</summary>
    public override Tensor forward(Tensor images) => Reconstruct(images, out _, out _);

    /// <summary>Image → reconstruction, the codes used, and the codebook + commitment loss.</summary>
    public Tensor Reconstruct(Tensor images, out Tensor codes, out Tensor quantizationLoss)
    {
        using var scope = NewDisposeScope();
        var z = Encode(images);
        var idx = NearestCodes(z);
        var zq = Lookup(idx);
        // codebook term pulls codes to encodings; commitment term pulls encodings to their codes
        var loss = nn.functional.mse_loss(zq, z.detach()) + Config.CommitmentWeight * nn.functional.mse_loss(z, zq.detach());
        var straightThrough = z + (zq - z).detach();
        var recon = decoder.forward(straightThrough);
        codes = idx.MoveToOuterDisposeScope();
        quantizationLoss = loss.MoveToOuterDisposeScope();
        return recon.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Counts code use, and at step 1, every 20 steps until step 500 and every 100 after, moves codes nobody chose
    /// since the last restart onto encodings from this batch, so the whole codebook gets used (a random codebook
    /// otherwise collapses onto one code). Deterministic given the batch. Returns the number of codes restarted.
    /// </summary>
    public int TrackUsageAndRestartDeadCodes(Tensor codes, Tensor images, long step)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        usage.add_(bincount(codes.flatten(), minlength: Config.CodebookSize).to(float32));
        int every = step < 500 ? 20 : 100;
        if (step != 1 && step % every != 0) return 0;
        var dead = (usage == 0).nonzero().flatten();
        int n = (int)dead.shape[0];
        if (n > 0)
        {
            var z = Encode(images).permute(0, 2, 3, 1).reshape(-1, Config.CodeDim); // (B*G*G, D)
            var pick = arange(n, dtype: int64) * 7919 % z.shape[0];              // spread over the batch, deterministic
            codebook.index_copy_(0, dead, z.index_select(0, pick) + 0.01f * randn(n, Config.CodeDim));
        }
        usage.zero_();
        return n;
    }
}
