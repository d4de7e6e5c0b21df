using SkiaSharp;
using Tessera.Data;

namespace Tessera.Datasets;

/// <summary>A grid of images with their captions underneath, as one PNG, for looking at data or results.</summary>
public static class ContactSheet
{
    /// <param name="items">Images (RGB, square, all the same size) with their labels.</param>
    /// <param name="columns">Images per row.</param>
    /// <param name="scale">Pixel magnification of each image (nearest neighbour, so tokens stay visible).</param>
    public static byte[] Render(IReadOnlyList<(byte[] Rgb, int Size, string Label)> items, int columns = 4, int scale = 3)
    {
        if (items.Count == 0) throw new ArgumentException("A contact sheet needs at least one image.", nameof(items));
        int cell = items[0].Size * scale, labelHeight = 34, pad = 8;
        int rows = (items.Count + columns - 1) / columns;
        int width = columns * (cell + pad) + pad, height = rows * (cell + labelHeight + pad) + pad;
        using var surface = SKSurface.Create(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul));
        var canvas = surface.Canvas;
        canvas.Clear(SKColors.White);
        var typeface = ShippedFont.Typeface;
        using var font = new SKFont(typeface, 9.5f);
        using var ink = new SKPaint { Color = SKColors.Black, IsAntialias = true };
        for (int k = 0; k < items.Count; k++)
        {
            var (rgb, size, label) = items[k];
            int x0 = pad + (k % columns) * (cell + pad), y0 = pad + (k / columns) * (cell + labelHeight + pad);
            using var bitmap = new SKBitmap(new SKImageInfo(size, size, SKColorType.Rgba8888, SKAlphaType.Opaque));
            var rgba = new byte[size * size * 4];
            for (int i = 0, j = 0; j < rgb.Length; i += 4, j += 3) { rgba[i] = rgb[j]; rgba[i + 1] = rgb[j + 1]; rgba[i + 2] = rgb[j + 2]; rgba[i + 3] = 255; }
            System.Runtime.InteropServices.Marshal.Copy(rgba, 0, bitmap.GetPixels(), rgba.Length);
            using var image = SKImage.FromBitmap(bitmap);
            canvas.DrawImage(image, new SKRect(x0, y0, x0 + cell, y0 + cell), new SKSamplingOptions(SKFilterMode.Nearest));
            float y = y0 + cell + 11;
            foreach (var line in Wrap(label, font, cell))
            {
                canvas.DrawText(line, x0, y, SKTextAlign.Left, font, ink);
                y += 11;
                if (y > y0 + cell + labelHeight) break;
            }
        }
        using var snapshot = surface.Snapshot();
        using var data = snapshot.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    private static IEnumerable<string> Wrap(string text, SKFont font, float width)
    {
        var line = "";
        foreach (var word in text.Split(' '))
        {
            var candidate = line.Length == 0 ? word : line + " " + word;
            if (font.MeasureText(candidate) > width && line.Length > 0)
            {
                yield return line;
                line = word;
            }
            else line = candidate;
        }
        if (line.Length > 0) yield return line;
    }
}
