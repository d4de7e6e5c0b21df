using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace Tessera.Pipeline.GlmImage;

/// <summary>
/// A Hugging Face <c>tokenizer.json</c> with a byte-level BPE model (GLM's, GPT-2's) loaded into
/// Microsoft.ML.Tokenizers' <see cref="BpeTokenizer"/>: the vocabulary and merges from <c>model</c>, the split
/// regex from the <c>pre_tokenizer</c>'s Split step (GPT-2's pattern when it has none), byte-level encoding, and the
/// <c>added_tokens</c> as special tokens matched whole. Other normalizers and model types are refused by name.
/// </summary>
public sealed class HfBpeTokenizer
{
    // GPT-2's pre-tokenization pattern (the default of a ByteLevel pre-tokenizer with use_regex).
    private const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    /// <summary>Largest tokenizer.json read (GLM's is a few MB).</summary>
    public const long MaxBytes = 256L << 20;

    private readonly BpeTokenizer _bpe;

    private HfBpeTokenizer(BpeTokenizer bpe, IReadOnlyDictionary<string, int> special)
    {
        _bpe = bpe;
        SpecialTokens = special;
    }

    /// <summary>added_tokens: content → id.</summary>
    public IReadOnlyDictionary<string, int> SpecialTokens { get; }

    public int Special(string token) => SpecialTokens.TryGetValue(token, out var id)
        ? id
        : throw new InvalidDataException($"The tokenizer has no special token {token}; GLM-Image's tokenizer.json lists it in added_tokens.");

    public IReadOnlyList<int> Encode(string text) => _bpe.EncodeToIds(text);

    public static HfBpeTokenizer Load(string path)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(Tessera.Abstractions.InputFiles.ReadAllBytes(path, "Tokenizer file", MaxBytes));
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path} is not valid JSON ({e.Message}).");
        }
        using (doc)
        {
            var root = doc.RootElement;
            var model = root.TryGetProperty("model", out var m) ? m : throw new InvalidDataException($"{path} has no \"model\" (a Hugging Face tokenizer.json has one).");
            if (model.TryGetProperty("type", out var type) && type.GetString() != "BPE")
                throw new InvalidDataException($"{path}: model type {type.GetString()} is not supported (only byte-level BPE).");
            if (root.TryGetProperty("normalizer", out var normalizer) && normalizer.ValueKind != JsonValueKind.Null)
                throw new InvalidDataException($"{path}: a normalizer ({normalizer.GetProperty("type").GetString()}) is not supported.");
            var vocab = model.GetProperty("vocab").EnumerateObject().Select(p => KeyValuePair.Create(p.Name, p.Value.GetInt32())).ToList();
            var merges = model.TryGetProperty("merges", out var mm)
                ? mm.EnumerateArray().Select(x => x.ValueKind == JsonValueKind.Array ? $"{x[0].GetString()} {x[1].GetString()}" : x.GetString()!).ToList()
                : [];
            var special = new Dictionary<string, int>(StringComparer.Ordinal);
            if (root.TryGetProperty("added_tokens", out var added))
                foreach (var t in added.EnumerateArray()) special[t.GetProperty("content").GetString()!] = t.GetProperty("id").GetInt32();
            string pattern = FindSplitPattern(root.TryGetProperty("pre_tokenizer", out var pre) ? pre : default) ?? Gpt2Pattern;
            var options = new BpeOptions(vocab)
            {
                Merges = merges,
                SpecialTokens = special,
                PreTokenizer = new RegexPreTokenizer(new Regex(pattern, RegexOptions.Compiled), special),
                ByteLevel = true,
            };
            return new HfBpeTokenizer(BpeTokenizer.Create(options), special);
        }
    }

    private static string? FindSplitPattern(JsonElement pre)
    {
        if (pre.ValueKind != JsonValueKind.Object) return null;
        if (pre.TryGetProperty("type", out var t) && t.GetString() == "Split" && pre.TryGetProperty("pattern", out var p) && p.TryGetProperty("Regex", out var r))
            return r.GetString();
        if (pre.TryGetProperty("pretokenizers", out var list))
            foreach (var item in list.EnumerateArray())
                if (FindSplitPattern(item) is { } found) return found;
        return null;
    }
}
