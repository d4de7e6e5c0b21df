namespace Tessera.Data;

/// <summary>A named colour as RGB bytes.</summary>
public readonly record struct NamedColor(string Name, byte R, byte G, byte B)
{
    /// <summary>Relative luminance (WCAG), 0..1.</summary>
    public double Luminance
    {
        get
        {
            static double Lin(byte c) { double s = c / 255.0; return s <= 0.03928 ? s / 12.92 : Math.Pow((s + 0.055) / 1.055, 2.4); }
            return 0.2126 * Lin(R) + 0.7152 * Lin(G) + 0.0722 * Lin(B);
        }
    }

    /// <summary>WCAG contrast ratio between two colours (1..21).</summary>
    public static double Contrast(NamedColor a, NamedColor b)
    {
        double hi = Math.Max(a.Luminance, b.Luminance), lo = Math.Min(a.Luminance, b.Luminance);
        return (hi + 0.05) / (lo + 0.05);
    }
}

/// <summary>The colours captions can name, and the text/background pairs legible enough to train on.</summary>
public static class Palette
{
    public static readonly NamedColor[] Colors =
    [
        new("red", 220, 30, 30), new("green", 30, 150, 50), new("blue", 30, 60, 210), new("yellow", 250, 220, 40),
        new("orange", 245, 130, 20), new("purple", 130, 40, 170), new("white", 250, 250, 250), new("black", 15, 15, 15),
        new("pink", 245, 150, 190), new("cyan", 40, 210, 230), new("brown", 120, 70, 30), new("gray", 128, 128, 128),
    ];

    /// <summary>Minimum contrast ratio between text and background (WCAG's 3:1 for large text).</summary>
    public const double MinContrast = 3.0;

    /// <summary>Every (text, background) pair with enough contrast.</summary>
    public static readonly (NamedColor Text, NamedColor Background)[] LegiblePairs =
        (from t in Colors from b in Colors where t != b && NamedColor.Contrast(t, b) >= MinContrast select (t, b)).ToArray();
}
