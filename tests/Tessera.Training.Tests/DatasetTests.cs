using System.Security.Cryptography;
using Tessera.Data;
using Tessera.Datasets;

namespace Tessera.Training.Tests;

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
            Captions.For("MOON", Palette.Colors[0], Palette.Colors.Single(c => c.Name == "orange"), "circle", Palette.Colors[2]));
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

    [TestMethod]
    public void TheGlyphMaskCoversTheDrawnTextAndNothingElse()
    {
        var g = new SampleGenerator(seed: 3, shapeProbability: 0);
        for (int i = 0; i < 8; i++)
        {
            var s = g.Sample(DataSplit.Train, i);
            var mask = s.Layout.Mask(s.Word, s.Size);
            int inkInside = 0, inside = 0, inkOutside = 0, ink = 0;
            for (int p = 0; p < s.Size * s.Size; p++)
            {
                var (r, gg, b) = (s.Rgb[3 * p], s.Rgb[3 * p + 1], s.Rgb[3 * p + 2]);
                bool isInk = Sq(r - s.Text.R) + Sq(gg - s.Text.G) + Sq(b - s.Text.B) < Sq(r - s.Background.R) + Sq(gg - s.Background.G) + Sq(b - s.Background.B);
                if (isInk) ink++;
                if (mask[p] > 0.5f) { inside++; if (isInk) inkInside++; }
                else if (mask[p] == 0f && isInk) inkOutside++;
            }
            // Skia's text contrast depends on the paint's luminance, so anti-aliased edges differ a little between
            // white-on-black and coloured text; the shapes must agree.
            double iou = inkInside / (double)(inside + ink - inkInside);
            Assert.IsTrue(inside > 60, $"sample {i}: mask has {inside} pixels");
            Assert.IsTrue(iou > 0.7, $"sample {i} ('{s.Word}'): mask and text overlap {iou:P0}");
            Assert.AreEqual(0, inkOutside, $"sample {i} ('{s.Word}'): no text where the mask is empty");
        }
    }

    [TestMethod]
    public void TextPlacementFindsTheLayoutThatATokenGridDescribes()
    {
        // A token grid made from a known layout: token k means "k/10 of this cell is text".
        var table = new TextPlacement(Enumerable.Range(0, 11).Select(k => k / 10f).ToArray());
        var g = new SampleGenerator(seed: 1);
        for (int i = 0; i < 6; i++)
        {
            var s = g.Sample(DataSplit.Validation, i);
            var pooled = GlyphLayout.Pool(s.Layout.Mask(s.Word, 64), 64, 8);
            var tokens = pooled.Select(c => (int)MathF.Round(c * 10)).ToArray();
            var fit = table.Fit(s.Word, tokens, 8, 64);
            Assert.AreEqual(s.Layout.X, fit.X, 3.5f, $"sample {i} ('{s.Word}') x");
            Assert.AreEqual(s.Layout.Baseline, fit.Baseline, 2.5f, $"sample {i} baseline");
            Assert.AreEqual(s.Layout.FontSize, fit.FontSize, s.Layout.FontSize * 0.1f, $"sample {i} size");
        }
    }

    [TestMethod]
    public void APlacementTableRoundTripsThroughItsFile()
    {
        var samples = Enumerable.Range(0, 20).Select(i => new SampleGenerator(seed: 2).Sample(DataSplit.Train, i))
            .Select(s => (s, GlyphLayout.Pool(s.Layout.Mask(s.Word, 64), 64, 8).Select(c => c > 0.2f ? 1 : 0).ToArray()));
        var table = TextPlacementTable.Measure(samples, 8, 4);
        Assert.IsTrue(table.CoverageByCode[1] > table.CoverageByCode[0], "cells marked as text have more text");
        Assert.AreEqual(0f, table.CoverageByCode[3], "an unused code is 0");
        var path = Path.Combine(Path.GetTempPath(), $"placement-{Guid.NewGuid():N}.json");
        table.Save(path);
        try { CollectionAssert.AreEqual(table.CoverageByCode.ToArray(), TextPlacement.Load(path).CoverageByCode.ToArray()); }
        finally { File.Delete(path); }
    }
}
