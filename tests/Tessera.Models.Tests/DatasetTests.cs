using System.Security.Cryptography;
using Tessera.Data;

namespace Tessera.Models.Tests;

[TestClass]
public sealed class DatasetTests
{
    private static string Digest(SampleGenerator g, DataSplit split, int n) =>
        Convert.ToHexString(SHA256.HashData(Enumerable.Range(0, n)
            .SelectMany(i => { var s = g.Sample(split, i); return s.Rgb.Concat(System.Text.Encoding.UTF8.GetBytes(s.Caption)); })
            .ToArray()));

    [TestMethod]
    public void TheDatasetIsIdenticalForTheSameSeedAndDiffersForAnother()
    {
        var a = Digest(new SampleGenerator(seed: 5), DataSplit.Train, 24);
        Assert.AreEqual(a, Digest(new SampleGenerator(seed: 5), DataSplit.Train, 24));
        Assert.AreNotEqual(a, Digest(new SampleGenerator(seed: 6), DataSplit.Train, 24));
    }

    [TestMethod]
    public void SamplesCanBeDrawnInAnyOrderOrInParallel()
    {
        var g = new SampleGenerator(seed: 1);
        var sequential = Enumerable.Range(0, 16).Select(i => g.Sample(DataSplit.Train, i).Rgb).ToArray();
        var parallel = new byte[16][];
        Parallel.For(0, 16, i => parallel[15 - i] = g.Sample(DataSplit.Train, 15 - i).Rgb);
        for (int i = 0; i < 16; i++) CollectionAssert.AreEqual(sequential[i], parallel[i], $"sample {i}");
    }

    [TestMethod]
    public void UnseenWordsNeverAppearInTrainingOrValidationSamples()
    {
        Assert.IsTrue(WordSplits.Unseen.Count >= 30, $"{WordSplits.Unseen.Count} unseen words");
        Assert.IsFalse(WordSplits.Seen.Intersect(WordSplits.Unseen).Any());
        var g = new SampleGenerator(seed: 0);
        var unseen = WordSplits.Unseen.ToHashSet();
        for (int i = 0; i < 300; i++)
        {
            Assert.IsFalse(unseen.Contains(g.Sample(DataSplit.Train, i).Word));
            Assert.IsFalse(unseen.Contains(g.Sample(DataSplit.Validation, i).Word));
            Assert.IsTrue(unseen.Contains(g.Sample(DataSplit.Unseen, i).Word));
        }
        Assert.IsTrue(WordSplits.All.All(w => w.Length is >= 3 and <= 6 && w.All(char.IsAsciiLetterUpper)));
    }

    [TestMethod]
    public void CaptionsQuoteTheWordAndNameTheColours()
    {
        var g = new SampleGenerator(seed: 2);
        for (int i = 0; i < 50; i++)
        {
            var s = g.Sample(DataSplit.Train, i);
            StringAssert.StartsWith(s.Caption, $"the word \"{s.Word}\" in {s.Text.Name} on a");
            StringAssert.Contains(s.Caption, $"{s.Background.Name} background");
            if (s.Shape is not null) StringAssert.EndsWith(s.Caption, $"{s.ShapeColor!.Value.Name} {s.Shape}");
            Assert.IsTrue(NamedColor.Contrast(s.Text, s.Background) >= Palette.MinContrast);
        }
        Assert.AreEqual("the word \"MOON\" in red on an orange background with a blue circle",
            SampleGenerator.Caption("MOON", Palette.Colors[0], Palette.Colors.Single(c => c.Name == "orange"), "circle", Palette.Colors[2]));
    }

    private static int Sq(int v) => v * v;

    [TestMethod]
    public void TheImageShowsTheTextColourOnTheBackground()
    {
        var s = new SampleGenerator(seed: 0, shapeProbability: 0).Render("MOON", Palette.Colors[0], Palette.Colors.Single(c => c.Name == "white"));
        Assert.AreEqual(64 * 64 * 3, s.Rgb.Length);
        int background = 0, text = 0;
        for (int p = 0; p < 64 * 64; p++)
        {
            var (r, g, b) = (s.Rgb[3 * p], s.Rgb[3 * p + 1], s.Rgb[3 * p + 2]);
            if (r == 250 && g == 250 && b == 250) background++;
            // Ink, anti-aliased edges included: nearer the red text colour than the white background.
            else if (Sq(r - 220) + Sq(g - 30) + Sq(b - 30) < Sq(r - 250) + Sq(g - 250) + Sq(b - 250)) text++;
        }
        Assert.IsTrue(background > 64 * 64 / 2, $"{background} background pixels");
        Assert.IsTrue(text is > 150 and < 64 * 64 / 3, $"{text} red text pixels");
    }
}
