using System.Diagnostics;
using Tessera.Abstractions;
using Tessera.Data;
using Tessera.Engine;

namespace Tessera.Pipeline.GlmImage;

/// <summary>One GLM-Image generation: prompt, size (multiples of 32), seed, steps, guidance, AR sampling overrides.</summary>
public sealed record GlmImageRequest(string Prompt)
{
    public int Width { get; init; } = 1024;
    public int Height { get; init; } = 1024;
    public ulong Seed { get; init; }
    public int Steps { get; init; } = 50;
    public double Cfg { get; init; } = 1.5;
    public double? Temperature { get; init; }

    public void Validate()
    {
        if (Width % 32 != 0 || Height % 32 != 0 || Width is < 64 or > 4096 || Height is < 64 or > 4096)
            throw new ArgumentException($"size {Width}x{Height}: GLM-Image takes widths and heights that are multiples of 32, from 64 to 4096.");
        if (Steps is < 1 or > 1000) throw new ArgumentException($"steps {Steps}: use 1 to 1000.");
        if (!double.IsFinite(Cfg) || Cfg is < 1 or > 100) throw new ArgumentException($"cfg {Cfg}: use a guidance scale from 1 (off) to 100.");
        if (Temperature is { } t && (!double.IsFinite(t) || t is < 0 or > 10)) throw new ArgumentException($"temperature {t}: use 0 (greedy) to 10.");
    }
}

/// <summary>
/// Runs a GLM-Image package on the plugin engine: the prompt laid out as the official processor lays it out
/// ({text}&lt;sop&gt;H W&lt;eop&gt;&lt;sop&gt;h w&lt;eop&gt;&lt;|dit_token_16384|&gt;, M-RoPE positions), the AR writing the
/// preview grid then the target grid with the KV cache on its device, the target grid upsampled ×2 as the DiT's prior,
/// the quoted text through the ByT5 glyph encoder, the DiT over the flow-matching schedule with classifier-free
/// guidance (unconditional: prior dropped, empty glyph text), the VAE decoder, PNG. Same seed, inputs and devices,
/// same bytes. Not applied: the processor's chat template (processor/chat_template.jinja), which this version does not render.
/// </summary>
public sealed class GlmImageGenerator : IDisposable
{
    private readonly GlmImagePackage _p;
    private readonly CompiledOnDevice _ar, _glyph, _dit, _vae;

    public GlmImageGenerator(TesseraEngine engine, GlmImagePackage package, string arDevice, string decoderDevice)
    {
        _p = package;
        var options = new CompileOptions();
        _ar = engine.Compile(ModelSource.FromFile(package.File("ar")), arDevice, options);
        _glyph = engine.Compile(ModelSource.FromFile(package.File("glyphEncoder")), decoderDevice, options);
        _dit = engine.Compile(ModelSource.FromFile(package.File("decoder")), decoderDevice, options);
        _vae = engine.Compile(ModelSource.FromFile(package.File("vae")), decoderDevice, options);
    }

    public DeviceId ArDevice => _ar.Model.Device;
    public DeviceId DecoderDevice => _dit.Model.Device;

    /// <summary>Target grid (H/32 × W/32) and the preview grid the processor derives from its aspect ratio (about 16 × 16).</summary>
    public static (int Th, int Tw, int Ph, int Pw) Grids(int width, int height)
    {
        int th = height / 32, tw = width / 32;
        double ratio = (double)th / tw;
        return (th, tw, (int)(Math.Sqrt(ratio) * 16), (int)(Math.Sqrt(1 / ratio) * 16));
    }

    public byte[] Generate(GlmImageRequest r, IProgress<GenerationProgress>? progress = null, CancellationToken cancel = default)
    {
        r.Validate();
        var target = WriteTokens(r, progress, cancel);
        var (th, tw, _, _) = Grids(r.Width, r.Height);
        return Decode(r, ModelInputs.Upsample(target, th, tw, 2), progress, cancel);
    }

    // ---------------------------------------------------------------- AR

    /// <summary>The prompt's ids: text, then the grid spec and the image start token.</summary>
    public long[] PromptIds(string prompt, int width, int height)
    {
        var (th, tw, ph, pw) = Grids(width, height);
        var t = _p.Tokenizer;
        int sop = t.Special("<sop>"), eop = t.Special("<eop>"), start = t.Special("<|dit_token_16384|>");
        var ids = new List<long>(t.Encode(prompt).Select(i => (long)i)) { sop };
        ids.AddRange(t.Encode($"{th} {tw}").Select(i => (long)i));
        ids.Add(eop);
        ids.Add(sop);
        ids.AddRange(t.Encode($"{ph} {pw}").Select(i => (long)i));
        ids.Add(eop);
        ids.Add(start);
        return [.. ids];
    }

    /// <summary>
    /// M-RoPE positions of the generated tokens: the preview grid from d = prompt length, token k at
    /// (d, d + k / w, d + k % w); the next grid starts max(h, w) later.
    /// </summary>
    public static long[][] GridPositions(int promptLength, int th, int tw, int ph, int pw)
    {
        var rows = new List<long[]>();
        long d = promptLength;
        foreach (var (h, w) in new[] { (ph, pw), (th, tw) })
        {
            for (int k = 0; k < h * w; k++) rows.Add([d, d + k / w, d + k % w]);
            d += Math.Max(h, w);
        }
        return [.. rows];
    }

    private int[] WriteTokens(GlmImageRequest r, IProgress<GenerationProgress>? progress, CancellationToken cancel)
    {
        var (th, tw, ph, pw) = Grids(r.Width, r.Height);
        var prompt = PromptIds(r.Prompt, r.Width, r.Height);
        var slots = GridPositions(prompt.Length, th, tw, ph, pw);
        int total = slots.Length, vocab = _p.VisionVocabulary, codes = _p.CodebookSize;
        var sampler = new TokenSampler(r.Temperature ?? _p.Sampling.Temperature, _p.Sampling.TopK, _p.Sampling.TopP, SplitMix64.Mix(r.Seed, 0xA12));
        var tokens = new int[total];
        int layers = _p.ArLayers;
        var pastK = new IDeviceTensor?[layers];
        var pastV = new IDeviceTensor?[layers];
        try
        {
            long[] ids = prompt;
            long[] positions = [.. Enumerable.Range(0, 3).SelectMany(_ => Enumerable.Range(0, prompt.Length).Select(i => (long)i))];
            int length = 0;
            for (int s = 0; s < total; s++)
            {
                cancel.ThrowIfCancellationRequested();
                int t = ids.Length;
                var feeds = new Dictionary<string, ITensorValue>
                {
                    ["input_ids"] = HostTensor.Create(ids, 1, t),
                    ["attention_mask"] = HostTensor.Create(Enumerable.Repeat(1L, length + t).ToArray(), 1, length + t),
                    ["position_ids"] = HostTensor.Create(positions, 3, 1, t),
                };
                for (int l = 0; l < layers; l++)
                {
                    feeds[$"past_key_values.{l}.key"] = pastK[l] ?? (ITensorValue)HostTensor.Zeros(TensorElementType.Float32, 1, _p.ArKvHeads, 0, _p.ArHeadDim);
                    feeds[$"past_key_values.{l}.value"] = pastV[l] ?? (ITensorValue)HostTensor.Zeros(TensorElementType.Float32, 1, _p.ArKvHeads, 0, _p.ArHeadDim);
                }
                using var outputs = _ar.Model.Run(feeds);
                var logits = new float[t * vocab];
                outputs["logits"].CopyTo<float>(logits);
                for (int l = 0; l < layers; l++)
                {
                    pastK[l]?.Dispose();
                    pastV[l]?.Dispose();
                    pastK[l] = outputs.Take($"present.{l}.key");
                    pastV[l] = outputs.Take($"present.{l}.value");
                }
                // Grid slots hold image codes: ids at and above the codebook (start/end markers) are not drawn there,
                // since the DiT's prior embedding has no row for them.
                var last = logits.AsSpan((t - 1) * vocab, codes);
                tokens[s] = sampler.Next(last);
                length += t;
                ids = [tokens[s]];
                positions = [slots[s][0], slots[s][1], slots[s][2]];
                progress?.Report(new GenerationProgress("ar", s + 1, total));
            }
        }
        finally
        {
            foreach (var x in pastK.Concat(pastV)) x?.Dispose();
        }
        return tokens[(ph * pw)..]; // the preview grid is written first and not used
    }

    // ---------------------------------------------------------------- glyphs, DiT, VAE

    /// <summary>Glyph states (1, Σ lengths, width) for a prompt's quoted texts (one EOS for none).</summary>
    private (float[] States, int Length, int Width) Glyphs(string prompt)
    {
        var batch = GlmImageGlyphTokenizer.Prepare(prompt);
        using var outputs = _glyph.Model.Run(new Dictionary<string, ITensorValue>
        {
            ["input_ids"] = HostTensor.Create(batch.InputIds, batch.Rows, batch.Length),
            ["attention_mask"] = HostTensor.Create(batch.AttentionMask, batch.Rows, batch.Length),
        });
        var host = outputs["glyph_states"].ToHost();
        int width = (int)host.Shape[2];
        var states = GlmImageGlyphTokenizer.Concatenate(batch, (float[])host.Data, width);
        return (states, batch.Tokens, width);
    }

    private byte[] Decode(GlmImageRequest r, long[] prior, IProgress<GenerationProgress>? progress, CancellationToken cancel)
    {
        int h = r.Height / _p.VaeScale, w = r.Width / _p.VaeScale, c = _p.LatentChannels, n = prior.Length;
        var schedule = GlmImageSchedule.Create(r.Steps, h * w / 4, _p.Scheduler);
        var x = DecoderStage.Gaussian(c * h * w, SplitMix64.Mix(r.Seed, 0xD17));
        var cond = Glyphs(r.Prompt);
        var uncond = r.Cfg > 1 ? Glyphs("") : default;
        var keep = new bool[n];
        var drop = Enumerable.Repeat(true, n).ToArray();
        float[] Velocity((float[] States, int Length, int Width) glyph, bool[] dropPrior, double timestep)
        {
            using var outputs = _dit.Model.Run(new Dictionary<string, ITensorValue>
            {
                ["latents"] = HostTensor.Create(x, 1, c, h, w),
                ["glyph_states"] = HostTensor.Create(glyph.States, 1, glyph.Length, glyph.Width),
                ["prior_ids"] = HostTensor.Create(prior, 1, n),
                ["prior_drop"] = HostTensor.Create(dropPrior, 1, n),
                ["timestep"] = HostTensor.Create(new[] { (float)timestep }, 1),
                ["target_size"] = HostTensor.Create(new[] { (float)r.Height, r.Width }, 1, 2),
                ["crop_coords"] = HostTensor.Create(new float[2], 1, 2),
            });
            var v = new float[x.Length];
            outputs["velocity"].CopyTo<float>(v);
            return v;
        }
        for (int i = 0; i < r.Steps; i++)
        {
            cancel.ThrowIfCancellationRequested();
            var v = Velocity(cond, keep, schedule.DitTimesteps[i]);
            if (r.Cfg > 1)
            {
                var vu = Velocity(uncond, drop, schedule.DitTimesteps[i]);
                for (int j = 0; j < v.Length; j++) v[j] = (float)(vu[j] + r.Cfg * (v[j] - vu[j]));
            }
            float dt = (float)(schedule.Sigmas[i + 1] - schedule.Sigmas[i]);
            for (int j = 0; j < x.Length; j++) x[j] += dt * v[j];
            progress?.Report(new GenerationProgress("decoder", i + 1, r.Steps));
        }
        using var image = _vae.Model.Run(new Dictionary<string, ITensorValue> { ["latents"] = HostTensor.Create(x, 1, c, h, w) });
        var chw = new float[3 * r.Height * r.Width];
        image["image"].CopyTo<float>(chw);
        var rgb = ModelInputs.ToRgb(chw, r.Width, r.Height); // [-1, 1] channel-first → RGB bytes
        return ImageFiles.EncodePng(rgb, r.Width, r.Height);
    }

    public void Dispose()
    {
        _ar.Dispose();
        _glyph.Dispose();
        _dit.Dispose();
        _vae.Dispose();
    }
}
