using System.Globalization;
using SkiaSharp;
using Tessera.Data;

namespace Tessera.Datasets;

/// <summary>Draws a loss curve (raw and smoothed, log-scale y) from a training run's loss.csv into a PNG.</summary>
public static class LossPlot
{
    public static void Write(string csvPath, string pngPath, string title, int width = 720, int height = 360)
    {
        var points = File.ReadLines(csvPath).Skip(1)
            .Select(l => l.Split(','))
            .Where(p => p.Length >= 2)
            .Select(p => (Step: double.Parse(p[0], CultureInfo.InvariantCulture), Loss: double.Parse(p[1], CultureInfo.InvariantCulture)))
            .Where(p => p.Loss > 0 && double.IsFinite(p.Loss))
            .ToList();
        if (points.Count < 2) return;

        using var surface = SKSurface.Create(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul));
        var c = surface.Canvas;
        c.Clear(SKColors.White);
        float left = 60, right = width - 20, top = 30, bottom = height - 40;
        double x0 = points[0].Step, x1 = points[^1].Step;
        double y0 = Math.Log10(points.Min(p => p.Loss)), y1 = Math.Log10(points.Max(p => p.Loss));
        if (y1 - y0 < 1e-6) y1 = y0 + 1;
        SKPoint Map(double step, double loss) => new(
            left + (float)((step - x0) / Math.Max(1, x1 - x0)) * (right - left),
            bottom - (float)((Math.Log10(loss) - y0) / (y1 - y0)) * (bottom - top));

        var typeface = ShippedFont.Typeface;
        using var font = new SKFont(typeface, 11);
        using var ink = new SKPaint { Color = SKColors.Black, IsAntialias = true };
        using var axis = new SKPaint { Color = SKColors.Gray, StrokeWidth = 1, IsAntialias = true };
        c.DrawLine(left, bottom, right, bottom, axis);
        c.DrawLine(left, top, left, bottom, axis);
        c.DrawText(title, left, 18, SKTextAlign.Left, font, ink);
        c.DrawText($"step {x0:F0}", left, height - 12, SKTextAlign.Left, font, ink);
        c.DrawText($"{x1:F0}", right, height - 12, SKTextAlign.Right, font, ink);
        c.DrawText($"{Math.Pow(10, y1):G3}", 4, top + 4, SKTextAlign.Left, font, ink);
        c.DrawText($"{Math.Pow(10, y0):G3}", 4, bottom, SKTextAlign.Left, font, ink);

        using var raw = new SKPaint { Color = new SKColor(120, 160, 230), StrokeWidth = 1, IsAntialias = true, Style = SKPaintStyle.Stroke };
        using var smooth = new SKPaint { Color = new SKColor(200, 40, 40), StrokeWidth = 2, IsAntialias = true, Style = SKPaintStyle.Stroke };
        for (int i = 1; i < points.Count; i++) c.DrawLine(Map(points[i - 1].Step, points[i - 1].Loss), Map(points[i].Step, points[i].Loss), raw);
        double ema = points[0].Loss;
        var prev = Map(points[0].Step, ema);
        for (int i = 1; i < points.Count; i++)
        {
            ema = 0.97 * ema + 0.03 * points[i].Loss;
            var p = Map(points[i].Step, ema);
            c.DrawLine(prev, p, smooth);
            prev = p;
        }
        using var image = surface.Snapshot();
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        var temp = $"{pngPath}.{Environment.ProcessId}.tmp"; // the pid lets a later run tell an orphan from a live write
        File.WriteAllBytes(temp, data.ToArray());
        File.Move(temp, pngPath, overwrite: true);
    }
}
