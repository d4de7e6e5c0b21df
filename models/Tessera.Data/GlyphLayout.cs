using SkiaSharp;

namespace Tessera.Data;

/// <summary>
/// Where a word is drawn in an image: font size (pixels per em), the left edge of the text and its baseline. The
/// training set draws words with <see cref="Jittered"/> (Tessera.Datasets); the decoder's glyph image is the same word drawn at the same layout
/// in white on black (<see cref="Mask"/>), the way glyph-conditioned text renderers (GlyphControl, AnyText) condition
/// on rendered text.
/// </summary>
public readonly record struct GlyphLayout(float FontSize, float X, float Baseline)
{
    /// <summary>Cap height of DejaVu Sans Bold as a fraction of the em.</summary>
    public const float CapHeight = 0.72f;

    /// <summary>The side margin for an image of <paramref name="size"/> pixels.</summary>
    public static float Margin(int size) => size / 16f;

    /// <summary>A font of the shipped face at <paramref name="size"/> pixels.</summary>
    public static SKFont Font(float size) => new(ShippedFont.Typeface, size) { Edging = SKFontEdging.Antialias, Subpixel = false };

    /// <summary>
    /// The dataset's layout: as large as fits in the middle band (image width less margins, about 40% of the height),
    /// scaled by 85-100% (<paramref name="sizeJitter"/>), placed anywhere in the horizontal slack (<paramref name="xJitter"/>)
    /// and moved up or down by up to 1/32 of the height (<paramref name="yJitter"/>); jitters are uniform in [0, 1).
    /// </summary>
    public static GlyphLayout Jittered(string word, int size, double sizeJitter, double xJitter, double yJitter)
    {
        float margin = Margin(size);
        using var font = Font(10f);
        float width10 = font.MeasureText(word);
        float maxByWidth = 10f * (size - 2 * margin) / width10;
        float maxByHeight = size * 0.40f / CapHeight;
        font.Size = MathF.Min(maxByWidth, maxByHeight) * (0.85f + 0.15f * (float)sizeJitter);
        float textWidth = font.MeasureText(word);
        float capHeight = font.Size * CapHeight;
        float slackX = size - 2 * margin - textWidth;
        float x = margin + slackX * (float)xJitter;
        float baseline = size / 2f + capHeight / 2f + (float)(yJitter - 0.5) * size / 16f;
        return new GlyphLayout(font.Size, x, baseline);
    }

    /// <summary>The middle of the dataset's layouts: 92.5% size, centred.</summary>
    public static GlyphLayout Centered(string word, int size) => Jittered(word, size, 0.5, 0.5, 0.5);

    /// <summary>Jitter value <paramref name="i"/> of <paramref name="n"/> evenly spaced ones in [0, 1).</summary>
    internal static double Step(int i, int n) => n == 1 ? 0.5 : i / (double)(n - 1) * 0.999;

    /// <summary>
    /// The word drawn at this layout, white on black, as coverage in [0, 1] (row-major, <paramref name="size"/>²).
    /// </summary>
    public float[] Mask(string word, int size)
    {
        var info = new SKImageInfo(size, size, SKColorType.Alpha8, SKAlphaType.Premul);
        using var surface = SKSurface.Create(info);
        surface.Canvas.Clear(SKColors.Transparent);
        using (var font = Font(FontSize))
        using (var paint = new SKPaint { Color = SKColors.White, IsAntialias = true })
            surface.Canvas.DrawText(word.ToUpperInvariant(), X, Baseline, SKTextAlign.Left, font, paint);
        var alpha = new byte[size * size];
        using (var image = surface.Snapshot())
        using (var pixmap = image.PeekPixels())
            System.Runtime.InteropServices.Marshal.Copy(pixmap.GetPixels(), alpha, 0, alpha.Length);
        var mask = new float[alpha.Length];
        for (int i = 0; i < alpha.Length; i++) mask[i] = alpha[i] / 255f;
        return mask;
    }

    /// <summary>Mean of a (size, size) mask over each cell of a (grid, grid) partition.</summary>
    public static float[] Pool(ReadOnlySpan<float> mask, int size, int grid)
    {
        int cell = size / grid;
        var pooled = new float[grid * grid];
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++)
                pooled[y / cell * grid + x / cell] += mask[y * size + x];
        for (int i = 0; i < pooled.Length; i++) pooled[i] /= cell * cell;
        return pooled;
    }
}

/// <summary>
/// Finds where text sits in an image described only by visual tokens: a table gives, for each token id, how much of
/// its cell was text in the training data; the layout whose pooled mask is closest (least squares) to that map wins.
/// </summary>
public sealed class TextPlacement(float[] coverageByCode)
{
    public IReadOnlyList<float> CoverageByCode => coverageByCode;

    /// <summary>Per-cell text coverage predicted from a (grid, grid) token grid.</summary>
    public float[] CoverageMap(ReadOnlySpan<int> tokens)
    {
        var map = new float[tokens.Length];
        for (int i = 0; i < tokens.Length; i++)
            map[i] = tokens[i] >= 0 && tokens[i] < coverageByCode.Length ? coverageByCode[tokens[i]] : 0f;
        return map;
    }

    /// <summary>
    /// The dataset layout of <paramref name="word"/> that best explains the token grid. The word is drawn once per
    /// size and baseline; horizontal positions reuse that drawing shifted by whole pixels (the text is drawn without
    /// subpixel positioning), so the search costs 12 renders instead of one per candidate.
    /// </summary>
    public GlyphLayout Fit(string word, ReadOnlySpan<int> tokens, int grid, int imageSize)
    {
        var target = CoverageMap(tokens);
        const int Sizes = 4, Xs = 17, Ys = 3;
        GlyphLayout best = GlyphLayout.Centered(word, imageSize);
        double bestError = double.MaxValue;
        int cell = imageSize / grid;
        var pooled = new float[grid * grid];
        for (int a = 0; a < Sizes; a++)
            for (int c = 0; c < Ys; c++)
            {
                var left = GlyphLayout.Jittered(word, imageSize, GlyphLayout.Step(a, Sizes), 0, GlyphLayout.Step(c, Ys));
                var mask = left.Mask(word, imageSize);
                for (int b = 0; b < Xs; b++)
                {
                    var layout = GlyphLayout.Jittered(word, imageSize, GlyphLayout.Step(a, Sizes), GlyphLayout.Step(b, Xs), GlyphLayout.Step(c, Ys));
                    int dx = (int)MathF.Round(layout.X - left.X);
                    Array.Clear(pooled);
                    for (int y = 0; y < imageSize; y++)
                        for (int x = Math.Max(0, dx); x < Math.Min(imageSize, imageSize + dx); x++) // dx < 0 where a word overfills its band
                            pooled[y / cell * grid + x / cell] += mask[y * imageSize + x - dx];
                    double error = 0;
                    for (int i = 0; i < pooled.Length; i++)
                    {
                        double d = pooled[i] / (cell * cell) - target[i];
                        error += d * d;
                    }
                    if (error < bestError) (best, bestError) = (layout, error);
                }
            }
        return best;
    }


    public void Save(string path) => File.WriteAllText(path, System.Text.Json.JsonSerializer.Serialize(new { coverageByCode }));

    public static TextPlacement Load(string path)
    {
        using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(path));
        return new TextPlacement(doc.RootElement.GetProperty("coverageByCode").EnumerateArray().Select(e => e.GetSingle()).ToArray());
    }
}
