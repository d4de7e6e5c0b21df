using System.Diagnostics;
using Tessera.Abstractions;
using Tessera.Data;
using Tessera.Engine;

namespace Tessera.Pipeline;

/// <summary>
/// prompt → tokens → AR (KV cache on the AR device) → target grid → DiT decoder (flow matching, CFG) → PNG.
/// The stages can sit on different devices. Image-to-image: the source goes through the VQ encoder and its tokens
/// become the preview grid the AR continues from, so the target grid follows the source's layout and colours.
/// </summary>
public sealed class ImageGenerator : IDisposable
{
    /// <summary>What the AR half produced, handed to the decoder half.</summary>
    public sealed record ArOutcome(Tessera.Data.Prompting.EncodedPrompt Prompt, ArStage.Tokens Tokens, TimeSpan Encode, IReadOnlyList<string> Warnings);

    private readonly TesseraEngine _engine;
    private readonly CompileOptions _options;
    private readonly CompiledOnDevice _ar, _decoder;
    private CompiledOnDevice? _vq;
    private readonly string _arDevice;

    public ImageGenerator(TesseraEngine engine, ModelPackage package, string arDevice = "auto", string decoderDevice = "auto", CompileOptions? options = null)
    {
        _engine = engine;
        Package = package;
        _arDevice = arDevice;
        _options = options ?? new CompileOptions { Fallback = engine.Options.Fallback };
        _ar = engine.Compile(ModelSource.FromFile(package.FileFor("ar")), arDevice, _options);
        try
        {
            _decoder = engine.Compile(ModelSource.FromFile(package.FileFor("decoder")), decoderDevice, _options);
        }
        catch
        {
            _ar.Dispose();
            throw;
        }
        Ar = new ArStage(_ar.Model, package.Manifest.Ar, package.Prompts);
        Decoder = new DecoderStage(_decoder.Model, package.Manifest.Decoder, package.Placement);
    }

    public ModelPackage Package { get; }

    /// <summary>
    /// A continuous-batching AR stepper over this generator's AR model (see <see cref="Batching.BatchingGenerator"/>);
    /// its KV cache stays on the AR's device. Dispose it to free that cache.
    /// </summary>
    public Batching.ArBatch CreateArBatch() => new(_ar.Model, Package.Manifest.Ar, Package.Prompts, KvCacheRows());

    private Batching.KvCacheRows? _kvCacheRows;
    private readonly object _kvCacheRowsGate = new();

    /// <summary>The KV-cache row graphs, compiled once on the AR's device and shared by every <see cref="Batching.ArBatch"/>.</summary>
    private Batching.KvCacheRows KvCacheRows()
    {
        lock (_kvCacheRowsGate)
        {
            var ar = Package.Manifest.Ar;
            var type = _ar.Model.Inputs.FirstOrDefault(i => i.Name == "past_key_values.0.key")?.ElementType ?? TensorElementType.Float32;
            return _kvCacheRows ??= Batching.KvCacheRows.Compile(
                source => _engine.Compile(source, _ar.Model.Device.ToString(), _options).Model, 2 * ar.Layers, type, ar.KvHeads, ar.HeadDim);
        }
    }
    public ArStage Ar { get; }
    public DecoderStage Decoder { get; }
    public DeviceId ArDevice => _ar.Model.Device;
    public DeviceId DecoderDevice => _decoder.Model.Device;

    /// <summary>Everything that fell back to another device when the stages were compiled.</summary>
    /// <summary>What fell back, once per distinct note (both stages on one unavailable device give the same note).</summary>
    public IReadOnlyList<string> FallbackNotes => _ar.FallbackNotes.Concat(_decoder.FallbackNotes).Distinct().ToList();

    public GenerationResult Generate(GenerationRequest request, IProgress<GenerationProgress>? progress = null, CancellationToken cancel = default) =>
        RunDecoderStage(request, RunArStage(request, progress, cancel), progress, cancel);

    /// <summary>What a request needs before its AR stage: the encoded prompt, its sampler, forced preview and warnings.</summary>
    public sealed record PreparedRequest(GenerationRequest Request, Tessera.Data.Prompting.EncodedPrompt Prompt, TokenSampler Sampler,
        int[]? ForcedPreview, IReadOnlyList<string> Warnings, TimeSpan Encode);

    /// <summary>
    /// Checks the request (<see cref="GenerationLimits"/>: a <see cref="GenerationParameterException"/> naming the parameter),
    /// encodes the prompt (and the source image for image-to-image) and makes the request's seeded sampler.
    /// </summary>
    public PreparedRequest Prepare(GenerationRequest request)
    {
        var d = Package.Manifest.Sampling;
        var watch = Stopwatch.StartNew();
        GenerationLimits.Validate(request, Package);
        GenerationLimits.ValidatePrompt(request.Prompt, Package);
        var prompt = Package.Prompts.Encode(request.Prompt);
        var warnings = new List<string>();
        if (prompt.UnknownTokens.Count > 0)
            warnings.Add($"the model does not know the word pieces {string.Join(", ", prompt.UnknownTokens.Distinct().Select(t => $"'{t.Trim()}'"))}; they are ignored");
        if (prompt.Glyphs.Length == 0)
            warnings.Add("the prompt quotes no text; the model is trained to render quoted words, e.g. the word \"MOON\"");
        int[]? forcedPreview = request.SourceRgb is null ? null : EncodeSource(request.SourceRgb);
        var sampler = new TokenSampler(request.Temperature ?? d.Temperature, request.TopK ?? d.TopK, request.TopP ?? d.TopP, SplitMix64.Mix(request.Seed, 0xA1));
        return new PreparedRequest(request, prompt, sampler, forcedPreview, warnings, watch.Elapsed);
    }

    /// <summary>The AR half of a generation: prompt → preview and target tokens (what pipelining overlaps).</summary>
    public ArOutcome RunArStage(GenerationRequest request, IProgress<GenerationProgress>? progress = null, CancellationToken cancel = default)
    {
        var p = Prepare(request);
        var tokens = Ar.Generate(p.Prompt, p.Sampler, p.ForcedPreview, useKvCache: true, progress, cancel);
        return new ArOutcome(p.Prompt, tokens, p.Encode, p.Warnings);
    }

    /// <summary>Decoder settings for a request: steps, guidance and schedule shift (the package's defaults where unset).</summary>
    public (int Steps, double Cfg, double Shift) DecoderSettings(GenerationRequest request)
    {
        var d = Package.Manifest.Sampling;
        return (request.Steps ?? d.Steps, request.Cfg ?? d.Cfg, d.Shift);
    }

    /// <summary>The decoder sampler for a request (the package's default where unset).</summary>
    public string DecoderSampler(GenerationRequest request) => request.Sampler ?? Package.Manifest.Sampling.Sampler;

    /// <summary>The decoder half: target tokens + glyphs → image.</summary>
    public GenerationResult RunDecoderStage(GenerationRequest request, ArOutcome ar, IProgress<GenerationProgress>? progress = null, CancellationToken cancel = default)
    {
        var (steps, cfg, shift) = DecoderSettings(request);
        var watch = Stopwatch.StartNew();
        var image = Decoder.Sample(ar.Tokens.Target, Package.Manifest.Ar.TargetGrid, ar.Prompt.Glyphs, request.Seed, steps, cfg, shift, null, progress, cancel, DecoderSampler(request));
        var timings = new StageTimings(ar.Encode, ar.Tokens.Prefill, ar.Tokens.Decode, Ar.Layout.VisualTokens, watch.Elapsed, Sampling.FlowSamplers.Evaluations(DecoderSampler(request), steps));
        return Finish(image, ar.Tokens.Preview, ar.Tokens.Target, timings, ar.Warnings);
    }

    /// <summary>Denoised pixels → the result (RGB bytes and PNG).</summary>
    public GenerationResult Finish(float[] image, int[] preview, int[] target, StageTimings timings, IReadOnlyList<string> warnings)
    {
        int size = Package.Manifest.Decoder.ImageSize;
        var rgb = ModelInputs.ToRgb(image, size);
        return new GenerationResult(rgb, size, ImageFiles.EncodePng(rgb, size, size), preview, target, timings, warnings);
    }

    /// <summary>Source image (RGB at the model size) → VQ codes → the preview grid the AR will continue from.</summary>
    private int[] EncodeSource(byte[] rgb)
    {
        int s = Package.Manifest.Decoder.ImageSize;
        if (rgb.Length != s * s * 3) throw new ArgumentException($"The source image must be {s}x{s} RGB; resize it first (ImageFiles.ReadRgb does).");
        _vq ??= _engine.Compile(ModelSource.FromFile(Package.FileFor("vq")), _arDevice, _options);
        var chw = new float[3 * s * s];
        ModelInputs.ToChannelFirst(rgb, chw);
        using var outputs = _vq.Model.Run(new Dictionary<string, ITensorValue> { ["image"] = HostTensor.Create(chw, 1, 3, s, s) });
        var codes = new long[Package.Manifest.Ar.TargetGrid * Package.Manifest.Ar.TargetGrid];
        outputs["codes"].CopyTo<long>(codes);
        return Ar.Layout.PreviewFromTarget(codes.Select(c => (int)c).ToArray());
    }

    public void Dispose()
    {
        _ar.Dispose();
        _decoder.Dispose();
        _vq?.Dispose();
        _kvCacheRows?.Dispose();
    }
}
