using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using Tessera.Data;
using Tessera.Pipeline;

namespace Tessera.Server;

/// <summary>A validated images request (generations or edits); every problem is a 400 naming the field.</summary>
public sealed record ImageRequest(string Prompt, int N, ulong Seed, int? Steps, double? Cfg, double? Temperature, int? TopK, double? TopP, bool Stream, byte[]? SourceRgb)
{
    /// <summary>Fields we read; OpenAI fields we accept and ignore; anything else is an error.</summary>
    private static readonly string[] Known = ["prompt", "n", "size", "response_format", "model", "seed", "steps", "cfg", "temperature", "top_k", "top_p", "stream", "image"];
    private static readonly string[] Ignored = ["user", "quality", "style"];

    /// <summary>The generation requests for this call: image i uses seed + i.</summary>
    public IEnumerable<GenerationRequest> Expand() => Enumerable.Range(0, N).Select(i => new GenerationRequest(Prompt)
    {
        Seed = Seed + (ulong)i, Steps = Steps, Cfg = Cfg, Temperature = Temperature, TopK = TopK, TopP = TopP, SourceRgb = SourceRgb,
    });

    public static ImageRequest FromJson(JsonElement body, ModelPackage package, ServerOptions options, bool edit)
    {
        if (body.ValueKind != JsonValueKind.Object) throw ApiError.BadRequest($"The body must be a JSON object, not {body.ValueKind.ToString().ToLowerInvariant()}.");
        var fields = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        foreach (var p in body.EnumerateObject())
        {
            if (Ignored.Contains(p.Name)) continue;
            if (!Known.Contains(p.Name) || (p.Name == "image" && !edit))
                throw ApiError.BadRequest($"Unknown field '{p.Name}'. Fields: {string.Join(", ", Known.Where(k => edit || k != "image"))}.", p.Name);
            fields[p.Name] = p.Value;
        }
        string? Str(string name) => fields.TryGetValue(name, out var v) ? v.ValueKind == JsonValueKind.String ? Text(v, name) : v.ValueKind == JsonValueKind.Null ? null
            : throw ApiError.BadRequest($"'{name}' must be a string, not {Kind(v)}.", name) : null;
        double? Num(string name) => fields.TryGetValue(name, out var v) ? v.ValueKind == JsonValueKind.Number ? Finite(v, name) : v.ValueKind == JsonValueKind.Null ? null
            : throw ApiError.BadRequest($"'{name}' must be a number, not {Kind(v)}.", name) : null;
        long? Int(string name)
        {
            var d = Num(name);
            if (d is null) return null;
            if (!fields[name].TryGetInt64(out var i)) throw ApiError.BadRequest($"'{name}' must be a whole number, not {fields[name].GetRawText()}.", name);
            return i;
        }
        ulong? Seed()
        {
            if (!fields.TryGetValue("seed", out var v) || v.ValueKind == JsonValueKind.Null) return null;
            if (v.ValueKind != JsonValueKind.Number || !v.TryGetUInt64(out var s)) throw ApiError.BadRequest($"'seed' must be a whole number from 0 to {ulong.MaxValue}, not {v.GetRawText()}.", "seed");
            return s;
        }
        bool stream = fields.TryGetValue("stream", out var st) && st.ValueKind switch
        {
            JsonValueKind.True => true, JsonValueKind.False or JsonValueKind.Null => false,
            _ => throw ApiError.BadRequest($"'stream' must be true or false, not {Kind(st)}.", "stream"),
        };
        byte[]? source = null;
        if (edit)
        {
            var image = Str("image") ?? throw ApiError.BadRequest("'image' is required: the source image as base64 (PNG, JPEG, WebP), or send multipart/form-data with an 'image' file.", "image");
            source = DecodeImage(Base64(image), package, options);
        }
        return Validate(Str("prompt"), Int("n"), Str("size"), Str("response_format"), Str("model"), Seed(), Int("steps"), Num("cfg"), Num("temperature"), Int("top_k"), Num("top_p"), stream, source, package, options);
    }

    /// <summary>
    /// A multipart edits request: the same fields as JSON, as text parts, plus an 'image' file part. Unknown parts
    /// and repeated fields are errors, as in JSON.
    /// </summary>
    public static ImageRequest FromForm(IFormCollectionLike form, byte[]? image, ModelPackage package, ServerOptions options)
    {
        foreach (var name in form.Names)
        {
            if (Ignored.Contains(name)) continue;
            if (!Known.Contains(name))
                throw ApiError.BadRequest($"Unknown field '{name}'. Fields: {string.Join(", ", Known)}.", name);
            if (form.Count(name) > 1) throw ApiError.BadRequest($"Field '{name}' is given {form.Count(name)} times; give it once.", name);
        }
        if (image is null) throw ApiError.BadRequest("'image' is required: a file field with the source image (PNG, JPEG, WebP).", "image");
        string? F(string name) => form.Get(name);
        long? I(string name) => F(name) is { } s ? long.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var v) ? v : throw ApiError.BadRequest($"'{name}' must be a whole number, not '{s}'.", name) : null;
        double? D(string name) => F(name) is { } s ? double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : throw ApiError.BadRequest($"'{name}' must be a number, not '{s}'.", name) : null;
        ulong? seed = F("seed") is { } ss ? ulong.TryParse(ss, NumberStyles.None, CultureInfo.InvariantCulture, out var sv) ? sv : throw ApiError.BadRequest($"'seed' must be a whole number from 0 to {ulong.MaxValue}, not '{ss}'.", "seed") : null;
        bool stream = F("stream") switch
        {
            null or "false" => false,
            "true" => true,
            var other => throw ApiError.BadRequest($"'stream' must be true or false, not '{other}'.", "stream"),
        };
        return Validate(F("prompt"), I("n"), F("size"), F("response_format"), F("model"), seed, I("steps"), D("cfg"), D("temperature"), I("top_k"), D("top_p"), stream,
            DecodeImage(image, package, options), package, options);
    }

    private static ImageRequest Validate(string? prompt, long? n, string? size, string? format, string? model, ulong? seed, long? steps, double? cfg,
        double? temperature, long? topK, double? topP, bool stream, byte[]? source, ModelPackage package, ServerOptions options)
    {
        var chosenSeed = seed ?? BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8)) % (1UL << 53);
        try
        {
            GenerationLimits.ValidatePrompt(prompt, package, options.MaxPromptChars);
            GenerationLimits.ValidateCount(chosenSeed, n ?? 1, options.MaxN);
            // The same checks as the CLI and the C# API: one GenerationRequest, validated by GenerationLimits.
            GenerationLimits.Validate(new GenerationRequest(prompt!)
            {
                Steps = Narrow(steps, "steps"), Cfg = cfg, Temperature = temperature, TopK = Narrow(topK, "top_k"), TopP = topP,
            }, package);
        }
        catch (GenerationParameterException e) { throw ApiError.BadRequest(e.Message, e.Parameter); }
        int s = package.Manifest.Decoder.ImageSize;
        if (size is not null && size != $"{s}x{s}") throw ApiError.BadRequest($"'size' is '{size}'; this model makes {s}x{s} images only.", "size");
        if (format is not null && format != "b64_json") throw ApiError.BadRequest($"'response_format' is '{format}'; only b64_json is supported (the server keeps no files).", "response_format");
        if (model is not null && model != package.Manifest.Name) throw ApiError.BadRequest($"'model' is '{model}'; this server runs '{package.Manifest.Name}'.", "model");
        return new ImageRequest(prompt!, (int)(n ?? 1), chosenSeed,
            (int?)steps, cfg, temperature, (int?)topK, topP, stream, source);
    }

    private static byte[] Base64(string text)
    {
        var comma = text.StartsWith("data:", StringComparison.Ordinal) ? text.IndexOf(',') : -1;
        try { return Convert.FromBase64String(comma >= 0 ? text[(comma + 1)..] : text); }
        catch (FormatException) { throw ApiError.BadRequest("'image' is not valid base64.", "image"); }
    }

    private static double Finite(JsonElement v, string name) =>
        v.TryGetDouble(out var d) && double.IsFinite(d) ? d : throw ApiError.BadRequest($"'{name}' is {v.GetRawText()}, which is out of range for a number.", name);

    private static int? Narrow(long? value, string name) => value is not { } v ? null
        : v is >= int.MinValue and <= int.MaxValue ? (int)v : throw ApiError.BadRequest($"'{name}' is {v}, which is far out of range.", name);

    private static string? Text(JsonElement v, string name)
    {
        try { return v.GetString(); }
        catch (InvalidOperationException) // an escaped lone surrogate such as "\ud800" (or invalid UTF-8) parses but is not text
        { throw ApiError.BadRequest($"'{name}' is not valid Unicode text (it has a lone UTF-16 surrogate or invalid UTF-8); send valid Unicode.", name); }
    }

    private static byte[] DecodeImage(byte[] encoded, ModelPackage package, ServerOptions options)
    {
        try { return ImageFiles.DecodeRgb(encoded, "'image'", package.Manifest.Decoder.ImageSize, options.ImageLimits).Rgb; }
        catch (InvalidDataException e) { throw ApiError.BadRequest(e.Message, "image"); }
    }

    private static string Kind(JsonElement v) => v.ValueKind switch
    {
        JsonValueKind.String => $"the string {v.GetRawText()}", JsonValueKind.Number => $"the number {v.GetRawText()}",
        JsonValueKind.True or JsonValueKind.False => v.GetRawText(), JsonValueKind.Array => "an array", JsonValueKind.Object => "an object", _ => "null",
    };
}

/// <summary>The part of a form this needs (so parsing is testable without ASP.NET).</summary>
public interface IFormCollectionLike
{
    string? Get(string name);
    /// <summary>Every field and file name in the form.</summary>
    IEnumerable<string> Names { get; }
    /// <summary>How many times a name occurs (fields and files).</summary>
    int Count(string name);
}
