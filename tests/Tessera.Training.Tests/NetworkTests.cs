using Tessera.Data;
using Tessera.Data.Prompting;
using Tessera.Models.Ar;
using Tessera.Models.Dit;
using Tessera.Models.Layers;
using static TorchSharp.torch;

namespace Tessera.Training.Tests;

[TestClass]
public sealed class NetworkTests
{
    private static (Tensor Ids, Tensor Positions) Sequence(int batch, int length, int vocab)
    {
        var ids = randint(0, vocab, [batch, length]);
        var p = arange(length).view(1, length, 1).expand(batch, length, 3).contiguous();
        return (ids, p);
    }

    [TestMethod]
    public void ArOutputShapesFollowTheConfigForTwoConfigs()
    {
        manual_seed(1);
        foreach (var cfg in new[] { new ArConfig { VocabSize = 900 }, new ArConfig { Hidden = 96, Layers = 2, Heads = 6, KvHeads = 3, Ffn = 128, VocabSize = 700, CodebookSize = 64 } })
        {
            using var scope = NewDisposeScope();
            var model = new ArTransformer(cfg);
            var (ids, pos) = Sequence(2, 11, cfg.VocabSize);
            var logits = model.Forward(ids, pos, null, null, out var present);
            CollectionAssert.AreEqual(new long[] { 2, 11, cfg.CodebookSize }, logits.shape);
            Assert.AreEqual(cfg.Layers, present.Count);
            CollectionAssert.AreEqual(new long[] { 2, cfg.KvHeads, 11, cfg.HeadDim }, present[0].K.shape);
        }
    }

    [TestMethod]
    public void ArDecodingWithTheKvCacheMatchesRecomputingTheWholeSequence()
    {
        manual_seed(2);
        using var scope = NewDisposeScope();
        var cfg = new ArConfig { Hidden = 96, Layers = 2, Heads = 4, KvHeads = 2, Ffn = 128, VocabSize = 300, CodebookSize = 50 };
        var model = new ArTransformer(cfg);
        model.eval();
        using var noGrad = no_grad();
        var (ids, pos) = Sequence(2, 9, cfg.VocabSize);
        var full = model.Forward(ids, pos, null, null, out _);

        var prefixLogits = model.Forward(ids.narrow(1, 0, 6), pos.narrow(1, 0, 6), null, null, out var cache);
        var steps = new List<Tensor> { prefixLogits };
        for (int i = 6; i < 9; i++)
        {
            steps.Add(model.Forward(ids.narrow(1, i, 1), pos.narrow(1, i, 1), null, cache, out var next));
            cache = next;
        }
        var incremental = cat(steps, 1);
        Assert.IsTrue(full.allclose(incremental, rtol: 1e-4, atol: 1e-5), $"max diff {(full - incremental).abs().max().item<float>()}");
    }

    [TestMethod]
    public void ArPaddingOnTheLeftDoesNotChangeTheLogitsOfRealTokens()
    {
        manual_seed(3);
        using var scope = NewDisposeScope();
        var cfg = new ArConfig { Hidden = 64, Layers = 2, Heads = 4, KvHeads = 2, Ffn = 96, VocabSize = 100, CodebookSize = 20 };
        var model = new ArTransformer(cfg);
        model.eval();
        using var noGrad = no_grad();
        var (ids, pos) = Sequence(1, 7, cfg.VocabSize);
        var plain = model.Forward(ids, pos, null, null, out _);
        var padded = model.Forward(cat([zeros(1, 3, dtype: ScalarType.Int64), ids], 1), cat([zeros(1, 3, 3, dtype: ScalarType.Int64), pos], 1),
            cat([zeros(1, 3, dtype: ScalarType.Bool), ones(1, 7, dtype: ScalarType.Bool)], 1), null, out _);
        Assert.IsFalse(padded.isnan().any().item<bool>(), "padded rows stay finite");
        Assert.IsTrue(plain.allclose(padded.narrow(1, 3, 7), rtol: 1e-4, atol: 1e-5));
    }

    [TestMethod]
    public void RotaryAxesSplitGlmWidthsAndPositionsRotateOnlyTheRotaryChannels()
    {
        CollectionAssert.AreEqual(new[] { 11, 11, 10 }, Rotary.Sections(ArConfig.GlmImageWidths().RotaryDim, 3));
        Assert.AreEqual(64, ArConfig.GlmImageWidths().RotaryDim);
        using var scope = NewDisposeScope();
        var x = randn(1, 2, 5, 16);
        var (cos, sin) = Rotary.Tables(arange(5).view(1, 5, 1).expand(1, 5, 3), 8, 2);
        var y = Rotary.Apply(x, cos, sin, 8);
        Assert.IsTrue(y.narrow(-1, 8, 8).allclose(x.narrow(-1, 8, 8), rtol: 0, atol: 0), "channels past the rotary width pass through");
        Assert.IsTrue(y.narrow(2, 0, 1).allclose(x.narrow(2, 0, 1)), "position 0 is not rotated");
        Assert.IsTrue(y.norm().allclose(x.norm(), rtol: 1e-5), "rotation keeps the norm");
    }

    [TestMethod]
    public void DitOutputShapesFollowTheConfigForTwoConfigs()
    {
        manual_seed(4);
        foreach (var cfg in new[] { new DitConfig { Layers = 2 }, new DitConfig { ImageSize = 32, Patch = 4, Hidden = 64, Layers = 1, Heads = 2, CodebookSize = 32, MaxGlyphs = 8 } })
        {
            using var scope = NewDisposeScope();
            var model = new DitDecoder(cfg);
            var x = randn(2, 3, cfg.ImageSize, cfg.ImageSize);
            var prior = randint(0, cfg.CodebookSize + 1, [2, cfg.TokenGrid, cfg.TokenGrid]);
            var glyphs = tensor(ModelInputs.GlyphIds("MOON"u8, cfg.MaxGlyphs).Concat(ModelInputs.GlyphIds("AB"u8, cfg.MaxGlyphs)).ToArray(), [2, cfg.MaxGlyphs]);
            var v = model.Forward(x, tensor(new[] { 0.3f, 0.9f }), prior, glyphs);
            CollectionAssert.AreEqual(x.shape, v.shape);
            Assert.AreEqual(0f, v.abs().max().item<float>(), "AdaLN-Zero: an untrained decoder predicts zero velocity");
        }
    }

    [TestMethod]
    public void PromptEncoderSendsQuotedTextAsBytesAndRejectsBadPrompts()
    {
        var encoder = PromptEncoder.ForDataset(512);
        var e = encoder.Encode("the word \"MOON\" in red on a yellow background");
        CollectionAssert.AreEqual("MOON"u8.ToArray(), e.Glyphs);
        Assert.AreEqual(1, e.TextIds.Count(id => id == ArVocabulary.QuoteMarker));
        Assert.AreEqual(0, e.UnknownTokens.Count);
        CollectionAssert.AreEqual("SUN"u8.ToArray(), encoder.Encode("a sign saying “SUN”").Glyphs);
        CollectionAssert.AreEqual("OPEN"u8.ToArray(), encoder.Encode("「OPEN」 in blue").Glyphs);
        Assert.IsTrue(encoder.Encode("a zebra playing saxophone").UnknownTokens.Count > 0);

        StringAssert.Contains(Assert.ThrowsExactly<PromptException>(() => encoder.Encode("   ")).Message, "empty");
        StringAssert.Contains(Assert.ThrowsExactly<PromptException>(() => encoder.Encode(string.Join(" ", Enumerable.Repeat("red", 60)))).Message, "limit is 48");
        StringAssert.Contains(Assert.ThrowsExactly<PromptException>(() => encoder.Encode("the word \"ABCDEFGHIJKLMNOPQRS\"")).Message, "limit is 16");

        var roundTrip = PromptEncoder.FromJson(encoder.ToJson(), "test");
        CollectionAssert.AreEqual(e.TextIds, roundTrip.Encode("the word \"MOON\" in red on a yellow background").TextIds);
    }

    [TestMethod]
    public void ArLayoutPutsThePreviewOnTheTargetScale()
    {
        var layout = new ArLayout();
        var v = PromptEncoder.ForDataset(512).Vocabulary;
        var prefix = layout.Prefix(PromptEncoder.ForDataset(512).Encode("the word \"CAT\" in red on a white background"), v);
        Assert.AreEqual(ArVocabulary.Bos, prefix[^1]);
        Assert.AreEqual((prefix.Length, prefix.Length + 2, prefix.Length + 2), layout.Position(prefix.Length + 5, prefix.Length), "preview (1, 1)");
        Assert.AreEqual((prefix.Length + 8, prefix.Length + 10, prefix.Length + 10), layout.Position(prefix.Length + 16 + 2 * 8 + 2, prefix.Length), "target (2, 2)");
        var target = Enumerable.Range(0, 64).ToArray();
        CollectionAssert.AreEqual(new[] { 0, 2, 4, 6, 16, 18, 20, 22, 32, 34, 36, 38, 48, 50, 52, 54 }, layout.PreviewFromTarget(target));
    }
}
