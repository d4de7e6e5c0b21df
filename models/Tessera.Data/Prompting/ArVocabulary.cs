namespace Tessera.Data.Prompting;

/// <summary>
/// The AR model's token id space, in blocks:
/// <c>[0, 16)</c> specials · text (the compact table of tokenizer ids) · 256 glyph bytes · 64 grid-size numbers ·
/// visual tokens (the VQ codebook). The AR's output head covers the visual block only.
/// </summary>
public sealed record ArVocabulary(int TextCount, int CodebookSize)
{
    public const int Pad = 0, Bos = 1, Sop = 2, Eop = 3, Unk = 4, QuoteMarker = 5, GlyphBegin = 6, GlyphEnd = 7;
    public const int SpecialCount = 16;
    public const int MaxGridSize = 64;

    public int TextBase => SpecialCount;
    public int GlyphBase => TextBase + TextCount;
    public int SizeBase => GlyphBase + 256;
    public int VisualBase => SizeBase + MaxGridSize;
    public int Size => VisualBase + CodebookSize;

    public int Text(int compactIndex) => TextBase + compactIndex;
    public int Glyph(byte b) => GlyphBase + b;
    public int GridSize(int n) => n is >= 0 and < MaxGridSize ? SizeBase + n : throw new ArgumentOutOfRangeException(nameof(n), n, $"grid sizes go up to {MaxGridSize - 1}");
    public int Visual(int code) => VisualBase + code;
}
