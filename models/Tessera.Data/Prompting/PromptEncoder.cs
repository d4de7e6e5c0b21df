using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace Tessera.Data.Prompting;

/// <summary>A prompt the model cannot take: empty, too long, or with too much quoted text.</summary>
public sealed class PromptException(string message) : ArgumentException(message);

/// <summary>A prompt split the way the model reads it.</summary>
/// <param name="TextIds">AR ids of the prose (quoted spans replaced by one marker each).</param>
/// <param name="Glyphs">UTF-8 bytes of the quoted text (spans joined by a space): what must be spelled.</param>
/// <param name="UnknownTokens">Prose tokens outside the model's vocabulary (mapped to UNK), for warnings.</param>
public sealed record EncodedPrompt(int[] TextIds, byte[] Glyphs, IReadOnlyList<string> UnknownTokens);

/// <summary>
/// Turns prompts into AR ids. Prose goes through Microsoft.ML.Tokenizers' o200k_base tokenizer, then through a
/// compact table (the tokenizer ids the training captions use; the table ships with the model) so the embedding stays
/// small; quoted text — between "…", '…', “…” or 「…」 — reaches the model as bytes, as in GLM-Image, so it can be spelled.
/// </summary>
public sealed partial class PromptEncoder
{
    public const int MaxTextTokens = 48;
    public const int MaxGlyphBytes = 16;

    private static readonly Lazy<Tokenizer> BaseTokenizer = new(() => TiktokenTokenizer.CreateForEncoding("o200k_base"));

    private readonly Dictionary<int, int> _compact;

    /// <param name="table">The tokenizer ids the model knows, in compact-index order.</param>
    /// <param name="codebookSize">Number of visual tokens.</param>
    public PromptEncoder(IReadOnlyList<int> table, int codebookSize)
    {
        Table = table;
        _compact = table.Select((id, i) => (id, i)).ToDictionary(p => p.id, p => p.i);
        Vocabulary = new ArVocabulary(table.Count, codebookSize);
    }

    public IReadOnlyList<int> Table { get; }
    public ArVocabulary Vocabulary { get; }

    /// <summary>The compact table for the dataset's caption language: every tokenizer id any caption can produce.</summary>
    public static PromptEncoder ForDataset(int codebookSize)
    {
        var ids = new SortedSet<int>();
        foreach (var text in Palette.Colors)
            foreach (var bg in Palette.Colors)
                foreach (var shape in Captions.Shapes.Append(null))
                    foreach (var id in Tokenize(StripQuotes(Captions.For("X", text, bg, shape, shape is null ? null : text)).Prose))
                        ids.Add(id);
        return new PromptEncoder(ids.ToList(), codebookSize);
    }

    /// <summary>Saves the compact table (what the inference side needs to encode prompts the same way).</summary>
    public string ToJson() => JsonSerializer.Serialize(new { tokenizer = "o200k_base", package = "Microsoft.ML.Tokenizers.Data.O200kBase", ids = Table, codebookSize = Vocabulary.CodebookSize });

    /// <summary>Reads a table written by <see cref="ToJson"/>; errors name the file.</summary>
    public static PromptEncoder FromJson(string json, string source)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            var root = doc.RootElement;
            if (root.GetProperty("tokenizer").GetString() != "o200k_base")
                throw new InvalidDataException($"{source}: tokenizer '{root.GetProperty("tokenizer").GetString()}' is not supported (expected o200k_base).");
            return new PromptEncoder(root.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToList(), root.GetProperty("codebookSize").GetInt32());
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            throw new InvalidDataException($"{source} is not a valid tokenizer table: {e.Message}", e);
        }
    }

    /// <summary>Splits and encodes a prompt. Throws <see cref="PromptException"/> for an empty or over-long prompt.</summary>
    public EncodedPrompt Encode(string prompt)
    {
        if (string.IsNullOrWhiteSpace(prompt)) throw new PromptException("The prompt is empty; describe the image, with any text to render in quotes, e.g. the word \"MOON\" in red on a yellow background.");
        var (prose, quoted) = StripQuotes(prompt);
        var ids = new List<int>();
        var unknown = new List<string>();
        foreach (var id in Tokenize(prose))
        {
            if (id == QuoteSentinelId) { ids.Add(ArVocabulary.QuoteMarker); continue; }
            if (_compact.TryGetValue(id, out var c)) ids.Add(Vocabulary.Text(c));
            else { ids.Add(ArVocabulary.Unk); unknown.Add(BaseTokenizer.Value.Decode([id]) ?? "?"); }
        }
        var glyphs = Encoding.UTF8.GetBytes(string.Join(" ", quoted));
        if (ids.Count > MaxTextTokens)
            throw new PromptException($"The prompt is {ids.Count} tokens long; the limit is {MaxTextTokens}. Shorten the description.");
        if (glyphs.Length > MaxGlyphBytes)
            throw new PromptException($"The quoted text is {glyphs.Length} bytes; the limit is {MaxGlyphBytes} (the model renders short words). Quote less text.");
        return new EncodedPrompt(ids.ToArray(), glyphs, unknown);
    }

    // Quoted spans become " §" in the prose, which o200k_base encodes as one token (space included).
    private const string QuoteSentinel = "\u00A7";
    private static readonly Lazy<int> QuoteSentinelIdLazy = new(() =>
        BaseTokenizer.Value.EncodeToIds(" " + QuoteSentinel) is [var id] ? id
            : throw new InvalidOperationException("o200k_base no longer encodes \" §\" as one token; choose another quote sentinel."));
    private static int QuoteSentinelId => QuoteSentinelIdLazy.Value;

    private static IReadOnlyList<int> Tokenize(string prose) => BaseTokenizer.Value.EncodeToIds(prose);

    /// <summary>The prose with each quoted span replaced by a sentinel, and the quoted spans.</summary>
    public static (string Prose, List<string> Quoted) StripQuotes(string prompt)
    {
        var quoted = new List<string>();
        var prose = QuoteRegex().Replace(prompt, m =>
        {
            quoted.Add(m.Groups.Cast<Group>().Skip(1).First(g => g.Success).Value);
            return " " + QuoteSentinel;
        });
        return (prose, quoted);
    }

    [GeneratedRegex("\"([^\"]*)\"|'([^']*)'|“([^”]*)”|「([^」]*)」")]
    private static partial Regex QuoteRegex();
}
