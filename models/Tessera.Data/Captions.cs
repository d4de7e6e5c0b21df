namespace Tessera.Data;

/// <summary>
/// The prompt language of Tessera's model family: captions name a quoted word, its colour, the background colour and
/// optionally a coloured shape. The prompt encoder's vocabulary is built from it, so it is part of the model's inputs;
/// the training set renderer (Tessera.Datasets) writes its captions with it.
/// </summary>
public static class Captions
{
    /// <summary>The shapes a caption can name.</summary>
    public static readonly string[] Shapes = ["circle", "square", "triangle"];

    /// <summary>The caption for a sample's contents: <c>the word "MOON" in red on a yellow background</c>.</summary>
    public static string For(string word, NamedColor text, NamedColor background, string? shape, NamedColor? shapeColor) =>
        $"the word \"{word}\" in {text.Name} on {Article(background.Name)} {background.Name} background" +
        (shape is null ? "" : $" with {Article(shapeColor!.Value.Name)} {shapeColor.Value.Name} {shape}");

    private static string Article(string nextWord) => "aeiou".Contains(nextWord[0]) ? "an" : "a";
}
