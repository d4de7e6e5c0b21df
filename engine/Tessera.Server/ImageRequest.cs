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
        string? Str(string name) => fields.TryGetValue(name, out var v) ? v.ValueKind == JsonValueKind.String ? v.GetString() : v.ValueKind == JsonValueKind.Null ? null
            : throw ApiError.BadRequest($"'{name}' must be a string, not {Kind(v)}.", name) : null;
        double? Num(string name) => fields.TryGetValue(name, out var v) ? v.ValueKind == JsonValueKind.Number ? v.GetDouble() : v.ValueKind == JsonValueKind.Null ? null
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
            source = DecodeImage(Base64(image), package);
        }
        return Validate(Str("prompt"), Int("n"), Str("size"), Str("response_format"), Str("model"), Seed(), Int("steps"), Num("cfg"), Num("temperature"), Int("top_k"), Num("top_p"), stream, source, package, options);
    }

    public static ImageRequest FromForm(IFormCollectionLike form, byte[]? image, ModelPackage package, ServerOptions options)
    {
        if (image is null) throw ApiError.BadRequest("'image' is required: a file field with the source image (PNG, JPEG, WebP).", "image");
        string? F(string name) => form.Get(name);
        long? I(string name) => F(name) is { } s ? long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : throw ApiError.BadRequest($"'{name}' must be a whole number, not '{s}'.", name) : null;
        double? D(string name) => F(name) is { } s ? double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : throw ApiError.BadRequest($"'{name}' must be a number, not '{s}'.", name) : null;
        ulong? seed = F("seed") is { } ss ? ulong.TryParse(ss, NumberStyles.Integer, CultureInfo.InvariantCulture, out var sv) ? sv : throw ApiError.BadRequest($"'seed' must be a whole number from 0 to {ulong.MaxValue}, not '{ss}'.", "seed") : null;
        return Validate(F("prompt"), I("n"), F("size"), F("response_format"), F("model"), seed, I("steps"), D("cfg"), D("temperature"), I("top_k"), D("top_p"), false,
            DecodeImage(image, package), package, options);
    }

    private static ImageRequest Validate(string? prompt, long? n, string? size, string? format, string? model, ulong? seed, long? steps, double? cfg,
        double? temperature, long? topK, double? topP, bool stream, byte[]? source, ModelPackage package, ServerOptions options)
    {
        if (string.IsNullOrWhiteSpace(prompt)) throw ApiError.BadRequest("'prompt' is required: describe the image, with the text to render in quotes, e.g. the word \"MOON\" in red on a yellow background.", "prompt");
        if (prompt.Length > options.MaxPromptChars) throw ApiError.BadRequest($"'prompt' is {prompt.Length} characters; the limit is {options.MaxPromptChars}.", "prompt");
        try { package.Prompts.Encode(prompt); }
        catch (ArgumentException e) { throw ApiError.BadRequest(e.Message, "prompt"); }
        if (n is { } nv && (nv < 1 || nv > options.MaxN)) throw ApiError.BadRequest($"'n' is {nv}; it must be from 1 to {options.MaxN}.", "n");
        int s = package.Manifest.Decoder.ImageSize;
        if (size is not null && size != $"{s}x{s}") throw ApiError.BadRequest($"'size' is '{size}'; this model makes {s}x{s} images only.", "size");
        if (format is not null && format != "b64_json") throw ApiError.BadRequest($"'response_format' is '{format}'; only b64_json is supported (the server keeps no files).", "response_format");
        if (model is not null && model != package.Manifest.Name) throw ApiError.BadRequest($"'model' is '{model}'; this server runs '{package.Manifest.Name}'.", "model");
        if (steps is { } st && (st < 1 || st > 200)) throw ApiError.BadRequest($"'steps' is {st}; it must be from 1 to 200.", "steps");
        if (cfg is { } c && (c < 0 || c > 30 || !double.IsFinite(c))) throw ApiError.BadRequest($"'cfg' is {c}; it must be from 0 to 30.", "cfg");
        if (temperature is { } t && (t < 0 || t > 5)) throw ApiError.BadRequest($"'temperature' is {t}; it must be from 0 to 5.", "temperature");
        if (topK is { } k && (k < 0 || k > package.Manifest.Ar.CodebookSize)) throw ApiError.BadRequest($"'top_k' is {k}; it must be from 0 (off) to {package.Manifest.Ar.CodebookSize}.", "top_k");
        if (topP is { } p && (p <= 0 || p > 1)) throw ApiError.BadRequest($"'top_p' is {p}; it must be above 0 and at most 1.", "top_p");
        return new ImageRequest(prompt, (int)(n ?? 1), seed ?? BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8)) % (1UL << 53),
            (int?)steps, cfg, temperature, (int?)topK, topP, stream, source);
    }

    private static byte[] Base64(string text)
    {
        var comma = text.StartsWith("data:", StringComparison.Ordinal) ? text.IndexOf(',') : -1;
        try { return Convert.FromBase64String(comma >= 0 ? text[(comma + 1)..] : text); }
        catch (FormatException) { throw ApiError.BadRequest("'image' is not valid base64.", "image"); }
    }

    private static byte[] DecodeImage(byte[] encoded, ModelPackage package)
    {
        try { return ImageFiles.DecodeRgb(encoded, "'image'", package.Manifest.Decoder.ImageSize).Rgb; }
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
}
