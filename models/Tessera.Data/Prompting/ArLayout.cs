namespace Tessera.Data.Prompting;

/// <summary>
/// The AR sequence, after GLM-Image:
/// <c>{text}{&lt;glyph&gt; bytes &lt;/glyph&gt;}&lt;sop&gt;H W&lt;eop&gt;&lt;sop&gt;h w&lt;eop&gt;&lt;bos&gt;</c> then the preview grid (h×w visual
/// tokens) then the target grid (H×W). Positions have three axes (temporal, row, column) for multi-axis rotary
/// embeddings: prefix tokens use (p, p, p); a grid starting at position P puts token (r, c) at (P, P + r·s, P + c·s)
/// with s = H / h for the preview, so both grids share one spatial scale; the next grid starts at P + H.
/// </summary>
public sealed record ArLayout(int TargetGrid = 8, int PreviewGrid = 4)
{
    public int PreviewTokens => PreviewGrid * PreviewGrid;
    public int TargetTokens => TargetGrid * TargetGrid;
    public int VisualTokens => PreviewTokens + TargetTokens;

    /// <summary>Prefix ids (everything up to and including &lt;bos&gt;) for an encoded prompt.</summary>
    public int[] Prefix(EncodedPrompt prompt, ArVocabulary v)
    {
        var ids = new List<int>(prompt.TextIds) { ArVocabulary.GlyphBegin };
        ids.AddRange(prompt.Glyphs.Select(v.Glyph));
        ids.Add(ArVocabulary.GlyphEnd);
        ids.AddRange([ArVocabulary.Sop, v.GridSize(TargetGrid), v.GridSize(TargetGrid), ArVocabulary.Eop,
                      ArVocabulary.Sop, v.GridSize(PreviewGrid), v.GridSize(PreviewGrid), ArVocabulary.Eop, ArVocabulary.Bos]);
        return ids.ToArray();
    }

    /// <summary>
    /// The 3-axis position of the token at sequence index <paramref name="index"/> for a prefix of
    /// <paramref name="prefixLength"/> tokens (index counts real tokens only, not padding).
    /// </summary>
    public (long T, long H, long W) Position(int index, int prefixLength)
    {
        if (index < prefixLength) return (index, index, index);
        int k = index - prefixLength;
        if (k < PreviewTokens)
        {
            int scale = TargetGrid / PreviewGrid, p = prefixLength;
            return (p, p + k / PreviewGrid * scale, p + k % PreviewGrid * scale);
        }
        k -= PreviewTokens;
        int q = prefixLength + TargetGrid;
        return (q, q + k / TargetGrid, q + k % TargetGrid);
    }

    /// <summary>The preview grid the model is trained to write first: every other code of the target grid (nearest 2x down).</summary>
    public int[] PreviewFromTarget(ReadOnlySpan<int> target)
    {
        int scale = TargetGrid / PreviewGrid;
        var preview = new int[PreviewTokens];
        for (int r = 0; r < PreviewGrid; r++)
            for (int c = 0; c < PreviewGrid; c++)
                preview[r * PreviewGrid + c] = target[r * scale * TargetGrid + c * scale];
        return preview;
    }
}
