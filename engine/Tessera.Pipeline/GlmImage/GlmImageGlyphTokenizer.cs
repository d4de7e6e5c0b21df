using System.Text;
using System.Text.RegularExpressions;

namespace Tessera.Pipeline.GlmImage;

/// <summary>
/// The glyph encoder's inputs for one prompt (<see cref="GlmImageGlyphTokenizer.Prepare"/>): <see cref="Rows"/> glyph
/// texts × <see cref="Length"/> ids, row-major, as <c>glyph_encoder.onnx</c> takes them (input_ids and
/// attention_mask, both (rows, length) int64).
/// </summary>
public sealed record GlyphBatch(IReadOnlyList<string> Texts, int Rows, int Length, long[] InputIds, long[] AttentionMask)
{
    /// <summary>Masked-in positions over all rows: the glyph sequence length the DiT receives.</summary>
    public int Tokens => (int)AttentionMask.Sum();
}

/// <summary>
/// GLM-Image's glyph text path before the encoder (inference side, no TorchSharp; the importer's tests use it too):
///
/// <list type="number">
/// <item>extraction (<see cref="ExtractGlyphTexts"/>): the texts inside quotes, by four patterns applied in this order
/// and concatenated: ASCII single quotes, curly double quotes “…”, ASCII double quotes, corner brackets 「…」; each
/// captures up to the next closing mark (no nesting). An apostrophe therefore opens a quote, as it does in the
/// official pipeline ("don't 'x'" yields "t ").</item>
/// <item>ByT5 tokenisation (<see cref="Encode"/>): id = UTF-8 byte + 3 (0 pad, 1 EOS, 2 unk), EOS appended, truncated
/// to <c>maxLength</c> ids with the EOS (2048 in the pipeline).</item>
/// <item>batching (<see cref="Prepare"/>): no glyph text means one empty text (a lone EOS). Every row then gets
/// (number of texts + 1) % 2 leading pad ids with mask 1 (one for an even count, none for an odd one: GLM-Image's
/// quirk, kept for fidelity), and is right-padded to the longest row with id 0, mask 0.</item>
/// <item>after the encoder (<see cref="Concatenate"/>): the masked-in states of all rows, concatenated into one
/// sequence (Σ lengths, d_model), which is the DiT's glyph input for this prompt.</item>
/// </list>
/// Known difference: transformers' ByT5Tokenizer first splits out its special-token strings typed inside the text
/// (<c>&lt;pad&gt;</c>, <c>&lt;/s&gt;</c>, <c>&lt;unk&gt;</c>, <c>&lt;extra_id_N&gt;</c>) and maps each to one id;
/// here every character is encoded as its bytes.
/// </summary>
public static class GlmImageGlyphTokenizer
{
    public const long PadId = 0, EosId = 1, UnkId = 2;

    /// <summary>Ids below this are special; a byte b has id b + 3.</summary>
    public const int ByteOffset = 3;

    public const int DefaultMaxLength = 2048;

    // The official order; each is applied to the whole prompt and the results are appended in turn.
    private static readonly Regex[] Quotes =
    [
        new("'([^']*)'", RegexOptions.CultureInvariant),
        new("\u201C([^\u201C\u201D]*)\u201D", RegexOptions.CultureInvariant),
        new("\"([^\"]*)\"", RegexOptions.CultureInvariant),
        new("\u300C([^\u300C\u300D]*)\u300D", RegexOptions.CultureInvariant),
    ];

    /// <summary>The glyph texts of a prompt, in the official order (empty when the prompt quotes nothing).</summary>
    public static IReadOnlyList<string> ExtractGlyphTexts(string prompt)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        var texts = new List<string>();
        foreach (var pattern in Quotes)
            foreach (Match m in pattern.Matches(prompt)) texts.Add(m.Groups[1].Value);
        return texts;
    }

    /// <summary>ByT5 ids of one text: UTF-8 bytes + 3, then EOS; at most <paramref name="maxLength"/> ids (EOS included).</summary>
    public static long[] Encode(string text, int maxLength = DefaultMaxLength)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (maxLength < 1) throw new ArgumentOutOfRangeException(nameof(maxLength), maxLength, "maxLength must leave room for the EOS id.");
        var bytes = Encoding.UTF8.GetBytes(text);
        int kept = Math.Min(bytes.Length, maxLength - 1);
        var ids = new long[kept + 1];
        for (int i = 0; i < kept; i++) ids[i] = bytes[i] + ByteOffset;
        ids[kept] = EosId;
        return ids;
    }

    /// <summary>The glyph encoder's batch for a prompt (its glyph texts, or one empty text), as the pipeline builds it.</summary>
    public static GlyphBatch Prepare(string prompt, int maxLength = DefaultMaxLength)
    {
        var found = ExtractGlyphTexts(prompt);
        IReadOnlyList<string> texts = found.Count > 0 ? found : [""];
        int leading = (texts.Count + 1) % 2;
        var rows = texts.Select(t => Encode(t, maxLength)).ToList();
        int length = rows.Max(r => r.Length) + leading;
        var ids = new long[texts.Count * length];          // zero-initialised: pad id 0
        var mask = new long[texts.Count * length];
        for (int r = 0; r < rows.Count; r++)
        {
            int start = r * length;
            Array.Fill(mask, 1L, start, leading + rows[r].Length); // the leading pads are attended to
            rows[r].CopyTo(ids, start + leading);
        }
        return new GlyphBatch(texts, texts.Count, length, ids, mask);
    }

    /// <summary>
    /// The masked-in rows of the encoder's output <paramref name="states"/> (rows, length, d_model), row-major, in
    /// order: (Tokens, d_model) flattened.
    /// </summary>
    public static float[] Concatenate(GlyphBatch batch, ReadOnlySpan<float> states, int dModel)
    {
        if (states.Length != (long)batch.Rows * batch.Length * dModel)
            throw new ArgumentException($"glyph states hold {states.Length} values; rows {batch.Rows} × length {batch.Length} × d_model {dModel} need {(long)batch.Rows * batch.Length * dModel}.", nameof(states));
        var result = new float[batch.Tokens * dModel];
        int written = 0;
        for (int p = 0; p < batch.Rows * batch.Length; p++)
        {
            if (batch.AttentionMask[p] == 0) continue;
            states.Slice(p * dModel, dModel).CopyTo(result.AsSpan(written * dModel));
            written++;
        }
        return result;
    }
}
