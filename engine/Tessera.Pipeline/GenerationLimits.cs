using System.Globalization;
using Tessera.Data.Prompting;

namespace Tessera.Pipeline;

/// <summary>A generation parameter is out of range. <see cref="Parameter"/> is its API name (steps, cfg, top_k, ...).</summary>
public sealed class GenerationParameterException(string parameter, string message) : ArgumentException(message)
{
    public string Parameter { get; } = parameter;
}

/// <summary>
/// The one validation of generation parameters, shared by the CLI, the C# API (<see cref="ImageGenerator"/>,
/// <see cref="Batching.BatchingGenerator"/>) and the HTTP server, so every door accepts exactly the same requests.
/// Messages name the parameter through a caller-chosen spelling ('cfg' for the API, --cfg for the CLI).
/// </summary>
public static class GenerationLimits
{
    public const int MaxSteps = 200;
    public const double MaxCfg = 30;
    public const double MaxTemperature = 5;
    /// <summary>Most images one CLI call or C# batch asks for (the server's own --max-n is at most this).</summary>
    public const int MaxImages = 64;
    /// <summary>Longest prompt in characters (the model's token limit is checked as well).</summary>
    public const int MaxPromptChars = 1000;

    /// <summary>How the API spells a parameter in messages: 'top_k'.</summary>
    public static string ApiName(string parameter) => $"'{parameter}'";

    /// <summary>How the CLI spells a parameter in messages: --top-k.</summary>
    public static string CliName(string parameter) => parameter == "prompt" ? "the prompt" : "--" + parameter.Replace('_', '-');

    /// <summary>Checks one request's sampling values against the package; unset values are the package's defaults (checked at open).</summary>
    public static void Validate(GenerationRequest request, ModelPackage package, Func<string, string>? name = null)
    {
        name ??= ApiName;
        if (request.Prompt is null) Fail("prompt", name, "is required: describe the image, with the text to render in quotes");
        if (request.Steps is { } st && (st < 1 || st > MaxSteps)) Fail("steps", name, $"is {st}; it must be from 1 to {MaxSteps}");
        if (request.Cfg is { } c && (!double.IsFinite(c) || c < 0 || c > MaxCfg)) Fail("cfg", name, $"is {Show(c)}; it must be from 0 to {MaxCfg} (1 turns guidance off)");
        if (request.Sampler is { } sm && !Sampling.FlowSamplers.IsKnown(sm)) Fail("sampler", name, $"is '{sm}'; it must be one of {string.Join(", ", Sampling.FlowSamplers.Names)}");
        if (request.Temperature is { } t && (!double.IsFinite(t) || t < 0 || t > MaxTemperature)) Fail("temperature", name, $"is {Show(t)}; it must be from 0 (greedy) to {MaxTemperature}");
        int codebook = package.Manifest.Ar.CodebookSize;
        if (request.TopK is { } k && (k < 0 || k > codebook)) Fail("top_k", name, $"is {k}; it must be from 0 (off) to {codebook}");
        if (request.TopP is { } p && (!double.IsFinite(p) || p <= 0 || p > 1)) Fail("top_p", name, $"is {Show(p)}; it must be above 0 and at most 1");
        int s = package.Manifest.Decoder.ImageSize;
        if (request.SourceRgb is { } rgb && rgb.Length != s * s * 3)
            Fail("image", name, $"has {rgb.Length} bytes; it must be {s}x{s} RGB ({s * s * 3} bytes): resize it first (ImageFiles.ReadRgb does)");
    }

    /// <summary>Checks a prompt: not empty, at most <paramref name="maxChars"/>, well-formed UTF-16, and encodable by the package.</summary>
    public static void ValidatePrompt(string? prompt, ModelPackage package, int maxChars = MaxPromptChars, Func<string, string>? name = null)
    {
        name ??= ApiName;
        if (string.IsNullOrWhiteSpace(prompt))
            Fail("prompt", name, "is required and must not be empty: describe the image, with the text to render in quotes, e.g. the word \"MOON\" in red on a yellow background");
        if (prompt.Length > maxChars) Fail("prompt", name, $"is {prompt.Length} characters; the limit is {maxChars}");
        for (int i = 0; i < prompt.Length; i++)
        {
            if (char.IsHighSurrogate(prompt[i]) && i + 1 < prompt.Length && char.IsLowSurrogate(prompt[i + 1])) { i++; continue; }
            if (char.IsSurrogate(prompt[i]))
                Fail("prompt", name, $"has a lone UTF-16 surrogate (U+{(int)prompt[i]:X4}) at character {i}, which is not text; send valid Unicode");
            if (char.IsControl(prompt[i]) && prompt[i] is not ('\n' or '\r' or '\t'))
                Fail("prompt", name, $"has the control character U+{(int)prompt[i]:X4} at character {i}; send plain text");
        }
        try { package.Prompts.Encode(prompt); }
        catch (ArgumentException e) when (e is not GenerationParameterException) { throw new GenerationParameterException("prompt", e.Message); }
    }

    /// <summary>Image i of a call uses seed + i: refuses a seed and count that would wrap past 2^64 - 1.</summary>
    public static void ValidateCount(ulong seed, long n, int maxImages = MaxImages, Func<string, string>? name = null)
    {
        name ??= ApiName;
        if (n < 1 || n > maxImages) Fail("n", name, $"is {n}; it must be from 1 to {maxImages}");
        if (seed > ulong.MaxValue - (ulong)(n - 1))
            Fail("seed", name, $"is {seed}; with {n} images the seeds seed..seed+{n - 1} must stay below 2^64, so it can be at most {ulong.MaxValue - (ulong)(n - 1)}");
    }

    private static string Show(double v) => v.ToString("R", CultureInfo.InvariantCulture);

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private static void Fail(string parameter, Func<string, string> name, string problem) =>
        throw new GenerationParameterException(parameter, $"{name(parameter)} {problem}.");
}
