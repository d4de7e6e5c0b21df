namespace Tessera.Pipeline;

/// <summary>One image to make. Unset sampling values come from the model package's defaults.</summary>
public sealed record GenerationRequest(string Prompt)
{
    public ulong Seed { get; init; }
    public int? Steps { get; init; }
    public double? Cfg { get; init; }
    /// <summary>Decoder sampler: euler, heun or dpm2m (<see cref="Sampling.FlowSamplers"/>).</summary>
    public string? Sampler { get; init; }
    public double? Temperature { get; init; }
    public int? TopK { get; init; }
    public double? TopP { get; init; }
    /// <summary>Image-to-image: a source image, RGB bytes at the model's size.</summary>
    public byte[]? SourceRgb { get; init; }
}

/// <summary>Progress of a generation, for progress bars.</summary>
public readonly record struct GenerationProgress(string Stage, int Done, int Total);

/// <summary>Wall times of each stage.</summary>
public sealed record StageTimings(TimeSpan Encode, TimeSpan ArPrefill, TimeSpan ArDecode, int ArTokens, TimeSpan Decoder, int DecoderSteps)
{
    public TimeSpan Total => Encode + ArPrefill + ArDecode + Decoder;
    public double ArTokensPerSecond => ArTokens / Math.Max(1e-9, (ArPrefill + ArDecode).TotalSeconds);
}

/// <summary>A finished image and how it was made.</summary>
public sealed record GenerationResult(
    byte[] Rgb,
    int Size,
    byte[] Png,
    int[] PreviewTokens,
    int[] TargetTokens,
    StageTimings Timings,
    IReadOnlyList<string> Warnings);
