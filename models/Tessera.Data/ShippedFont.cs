using System.Reflection;
using SkiaSharp;

namespace Tessera.Data;

/// <summary>
/// The one typeface everything is drawn in (DejaVu Sans Bold, embedded; license in Fonts/DejaVu-LICENSE.txt): the
/// training set, the decoder's glyph images, contact sheets and plots, so renders are identical on every machine.
/// Shared: do not dispose it.
/// </summary>
public static class ShippedFont
{
    private static readonly Lazy<SKTypeface> Face = new(() =>
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream("Tessera.Data.DejaVuSans-Bold.ttf")
            ?? throw new InvalidOperationException("The shipped DejaVu Sans Bold font is missing from Tessera.Data.");
        return SKTypeface.FromStream(stream) ?? throw new InvalidOperationException("The shipped DejaVu Sans Bold font could not be loaded.");
    });

    public static SKTypeface Typeface => Face.Value;
}
