using SkiaSharp;
using Tessera.Data;

namespace Tessera.Datasets;

/// <summary>
/// Renders word images with captions, deterministically: the sample at (seed, split, index) is always the same
/// pixels and caption, and samples can be drawn in any order or in parallel.
/// </summary>
public sealed class SampleGenerator
{

    /// <param name="seed">Dataset seed.</param>
    /// <param name="size">Image size in pixels (square). Default 64.</param>
    /// <param name="shapeProbability">Chance that a sample also has a shape. Default 0.35.</param>
    public SampleGenerator(ulong seed = 0, int size = 64, double shapeProbability = 0.35)
    {
        if (size < 16) throw new ArgumentOutOfRangeException(nameof(size), size, "Images must be at least 16 pixels wide.");
        Seed = seed;
        Size = size;
        ShapeProbability = shapeProbability;
    }

    public ulong Seed { get; }
    public int Size { get; }
    public double ShapeProbability { get; }

    /// <summary>The sample at <paramref name="index"/> of a split.</summary>
    public DataSample Sample(DataSplit split, long index)
    {
        var rng = new SplitMix64(SplitMix64.Mix(Seed, (ulong)split, (ulong)index));
        var words = WordSplits.For(split);
        var word = words[rng.NextInt(words.Count)];
        var (text, background) = Palette.LegiblePairs[rng.NextInt(Palette.LegiblePairs.Length)];
        string? shape = null;
        NamedColor? shapeColor = null;
        if (rng.NextDouble() < ShapeProbability)
        {
            shape = Captions.Shapes[rng.NextInt(Captions.Shapes.Length)];
            var candidates = Palette.Colors.Where(c => c != background && NamedColor.Contrast(c, background) >= 1.5).ToArray();
            shapeColor = candidates[rng.NextInt(candidates.Length)];
        }
        return Render(word, text, background, shape, shapeColor, ref rng);
    }

    /// <summary>Renders a specific word and colours (used for evaluation ground truth); layout jitter comes from <paramref name="layoutSeed"/>.</summary>
    public DataSample Render(string word, NamedColor text, NamedColor background, string? shape = null, NamedColor? shapeColor = null, ulong layoutSeed = 0)
    {
        var rng = new SplitMix64(SplitMix64.Mix(Seed, 99, layoutSeed));
        return Render(word.ToUpperInvariant(), text, background, shape, shapeColor, ref rng);
    }


    private DataSample Render(string word, NamedColor text, NamedColor background, string? shape, NamedColor? shapeColor, ref SplitMix64 rng)
    {
        int s = Size;
        var info = new SKImageInfo(s, s, SKColorType.Rgba8888, SKAlphaType.Premul);
        using var surface = SKSurface.Create(info);
        var canvas = surface.Canvas;
        canvas.Clear(new SKColor(background.R, background.G, background.B));

        float margin = GlyphLayout.Margin(s);
        // Text: as large as fits in the middle band, jittered in size and position (see GlyphLayout.Jittered).
        var layout = GlyphLayout.Jittered(word, s, rng.NextDouble(), rng.NextDouble(), rng.NextDouble());
        using var font = GlyphLayout.Font(layout.FontSize);
        float x = layout.X, baseline = layout.Baseline;
        using (var paint = new SKPaint { Color = new SKColor(text.R, text.G, text.B), IsAntialias = true })
            canvas.DrawText(word, x, baseline, SKTextAlign.Left, font, paint);

        // Shape: in a corner band above or below the text.
        if (shape is not null)
        {
            float d = s * (0.16f + 0.05f * (float)rng.NextDouble());
            bool top = rng.NextDouble() < 0.5, left = rng.NextDouble() < 0.5;
            float cx = left ? margin + d / 2 : s - margin - d / 2;
            float cy = top ? margin + d / 2 : s - margin - d / 2;
            using var paint = new SKPaint { Color = new SKColor(shapeColor!.Value.R, shapeColor.Value.G, shapeColor.Value.B), IsAntialias = true };
            switch (shape)
            {
                case "circle": canvas.DrawCircle(cx, cy, d / 2, paint); break;
                case "square": canvas.DrawRect(cx - d / 2, cy - d / 2, d, d, paint); break;
                default:
                    using (var builder = new SKPathBuilder())
                    {
                        builder.MoveTo(cx, cy - d / 2);
                        builder.LineTo(cx + d / 2, cy + d / 2);
                        builder.LineTo(cx - d / 2, cy + d / 2);
                        builder.Close();
                        using var path = builder.Detach();
                        canvas.DrawPath(path, paint);
                    }
                    break;
            }
        }

        var rgba = new byte[s * s * 4];
        using (var image = surface.Snapshot())
        using (var pixmap = image.PeekPixels())
            System.Runtime.InteropServices.Marshal.Copy(pixmap.GetPixels(), rgba, 0, rgba.Length);
        var rgb = new byte[s * s * 3];
        for (int i = 0, j = 0; i < rgba.Length; i += 4, j += 3)
        {
            rgb[j] = rgba[i];
            rgb[j + 1] = rgba[i + 1];
            rgb[j + 2] = rgba[i + 2];
        }
        return new DataSample(word, Captions.For(word, text, background, shape, shapeColor), text, background, shape, shapeColor, s, rgb) { Layout = layout };
    }
}
