using Tessera.Data;

namespace Tessera.Datasets;

/// <summary>One rendered training example.</summary>
/// <param name="Word">The word drawn (uppercase).</param>
/// <param name="Caption">The prompt, quoting the word: <c>the word "MOON" in red on a yellow background</c>.</param>
/// <param name="Text">Text colour.</param>
/// <param name="Background">Background colour.</param>
/// <param name="Shape">"circle", "square", "triangle", or null.</param>
/// <param name="ShapeColor">The shape's colour, when there is one.</param>
/// <param name="Size">Image width and height in pixels.</param>
/// <param name="Rgb">Pixels, row-major, 3 bytes per pixel (R, G, B), Size*Size*3 bytes.</param>
public sealed record DataSample(
    string Word,
    string Caption,
    NamedColor Text,
    NamedColor Background,
    string? Shape,
    NamedColor? ShapeColor,
    int Size,
    byte[] Rgb)
{
    /// <summary>Where and how large the word was drawn.</summary>
    public GlyphLayout Layout { get; init; } = GlyphLayout.Centered(Word, Size);
}
