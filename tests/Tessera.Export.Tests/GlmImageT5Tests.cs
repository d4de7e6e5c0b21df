using System.Text.Json.Nodes;
using Tessera.Export.Checkpoints;
using Tessera.GlmImage;
using Tessera.Pipeline.GlmImage;
using static TorchSharp.torch;

namespace Tessera.Export.Tests;

/// <summary>
/// GLM-Image's glyph encoder (ByT5's T5 encoder) from a text_encoder folder in the official layout: a tiny random
/// checkpoint that PyTorch wrote (Reference/glm_image_t5.py, our reading of the published T5 description, not the
/// reference code) exports, passes parity against TorchSharp on two shapes, and its ONNX states match PyTorch's for a
/// batch with a padded row; bad checkpoints are refused by name.
/// </summary>
[TestClass]
public sealed class GlmImageT5Tests
{
    private string _temp = "";

    [TestInitialize]
    public void Init() => _temp = TestSupport.NewTempDir();

    [TestCleanup]
    public void Cleanup() => Directory.Delete(_temp, recursive: true);

    private string WriteCheckpoint()
    {
        var dir = Path.Combine(_temp, "text_encoder");
        var (code, stdout, stderr) = TestSupport.Run(TestSupport.Python, [Path.Combine(AppContext.BaseDirectory, "Reference", "glm_image_t5.py"), "--out", dir]);
        Assert.AreEqual(0, code, stdout + stderr);
        return dir;
    }

    [TestMethod]
    public void TheGlyphEncoderExportsWithDynamicShapesAndMatchesPyTorchWithAPaddedRow()
    {
        var dir = WriteCheckpoint();
        var r = GlmImageT5Exporter.Export(dir, Path.Combine(_temp, "out"));
        Assert.IsTrue(r.Model.Passed, string.Join("; ", r.Model.Parity.Select(p => $"{p.Case} {p.MaxAbsError:E2}")));
        Assert.AreEqual(2, r.Model.Parity.Count, "two shapes");
        Assert.AreEqual(1 + 2 * 9 + 1 + 1, r.Weights.Consumed.Count, "shared, 9 tensors per block, block 0's relative bias, final norm");
        CollectionAssert.AreEqual(new[] { GlmImageT5Encoder.TiedName }, r.Weights.Derived.ToArray(), "embed_tokens is derived from shared");
        Assert.AreEqual("glyph_encoder.onnx", Path.GetFileName(r.Model.ModelPath));

        var reference = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "reference.json")))!;
        long[] L(string k) => reference[k]!.AsArray().Select(x => x!.GetValue<long>()).ToArray();
        var dims = L("dims"); // b, L, d_model
        var feeds = new Dictionary<string, Tensor>
        {
            ["input_ids"] = tensor(L("input_ids"), [dims[0], dims[1]]),
            ["attention_mask"] = tensor(L("attention_mask"), [dims[0], dims[1]]),
        };
        using var parity = new Parity(r.Model.ModelPath);
        var got = parity.Run(feeds)["glyph_states"];
        CollectionAssert.AreEqual(new[] { dims[0], dims[1], dims[2] }, got.shape);
        var expected = reference["last_hidden_state"]!.AsArray().Select(x => x!.GetValue<float>()).ToArray();
        var values = got.data<float>().ToArray();
        double worst = expected.Zip(values, (e, g) => Math.Abs(e - g)).Max();
        Assert.IsTrue(worst <= 1e-4, $"max |ONNX - PyTorch| = {worst:E2}");
        Assert.IsTrue(expected.Select(Math.Abs).Max() > 0.5, "the states are not degenerate");

        // The padding mask matters: unmasking the padded row's tail changes its real positions.
        var unmasked = new Dictionary<string, Tensor> { ["input_ids"] = feeds["input_ids"], ["attention_mask"] = ones(dims[0], dims[1], dtype: ScalarType.Int64) };
        var open = parity.Run(unmasked)["glyph_states"];
        Assert.IsTrue(open[1].narrow(0, 0, 5).sub(got[1].narrow(0, 0, 5)).abs().max().item<float>() > 1e-3, "masked keys are left out");
        Assert.IsTrue(open[0].sub(got[0]).abs().max().item<float>() < 1e-5, "the unpadded row does not change");
    }

    [TestMethod]
    public void RelativeBucketsMatchTheReferenceAtByT5sSettingsIncludingTheLogBoundaries()
    {
        var dir = WriteCheckpoint();
        var reference = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "reference.json")))!;
        var expected = reference["byt5_buckets"]!.AsArray().Select(x => x!.GetValue<long>()).ToArray();
        var got = GlmImageT5Encoder.RelativeBucket(arange(-300L, 301L), 32, 128).data<long>().ToArray();
        CollectionAssert.AreEqual(expected, got);
        // Spot checks from the formula: distance 7 is exact, 8 the first log bucket, 16 → 8 + 2, 128+ saturated; keys after the query add 16.
        Assert.AreEqual(7, got[300 - 7]);
        Assert.AreEqual(8, got[300 - 8]);
        Assert.AreEqual(10, got[300 - 16]);
        Assert.AreEqual(15, got[300 - 300]);
        Assert.AreEqual(16 + 10, got[300 + 16]);
        Assert.AreEqual(16 + 15, got[300 + 200]);
    }

    [TestMethod]
    public void AMissingTensorADifferingTiedCopyOrAnUnsupportedConfigIsNamed()
    {
        var dir = WriteCheckpoint();
        var path = Path.Combine(dir, "model.safetensors");
        var original = TorchSharp.PyBridge.Safetensors.LoadStateDict(path);

        var tensors = new Dictionary<string, Tensor>(original);
        tensors.Remove("encoder.block.1.layer.1.DenseReluDense.wi_1.weight");
        File.Delete(path);
        TorchSharp.PyBridge.Safetensors.SaveStateDict(path, tensors);
        var e = Assert.ThrowsExactly<CheckpointException>(() => GlmImageT5Exporter.Export(dir, Path.Combine(_temp, "bad")));
        StringAssert.Contains(e.Message, "missing 1 tensor (encoder.block.1.layer.1.DenseReluDense.wi_1.weight)");

        // A relative-bias table in block 1 is not T5's layout (only block 0 has one).
        tensors = new Dictionary<string, Tensor>(original) { ["encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight"] = zeros(16, 4) };
        File.Delete(path);
        TorchSharp.PyBridge.Safetensors.SaveStateDict(path, tensors);
        e = Assert.ThrowsExactly<CheckpointException>(() => GlmImageT5Exporter.Export(dir, Path.Combine(_temp, "bad")));
        StringAssert.Contains(e.Message, "unexpected 1 tensor (encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight)");

        // The tied copy may be present; equal it loads, different it is refused.
        tensors = new Dictionary<string, Tensor>(original) { [GlmImageT5Encoder.TiedName] = original["shared.weight"].clone() };
        File.Delete(path);
        TorchSharp.PyBridge.Safetensors.SaveStateDict(path, tensors);
        var r = GlmImageT5Exporter.Export(dir, Path.Combine(_temp, "tied"), layers: 1);
        Assert.AreEqual(0, r.Weights.Derived.Count);
        Assert.AreEqual(9, r.SlicedAwayTensors, "block 1's tensors");
        tensors[GlmImageT5Encoder.TiedName] = original["shared.weight"].add(1);
        File.Delete(path);
        TorchSharp.PyBridge.Safetensors.SaveStateDict(path, tensors);
        e = Assert.ThrowsExactly<CheckpointException>(() => GlmImageT5Exporter.Export(dir, Path.Combine(_temp, "bad")));
        StringAssert.Contains(e.Message, "encoder.embed_tokens.weight differs from shared.weight");

        var configPath = Path.Combine(dir, "config.json");
        var config = JsonNode.Parse(File.ReadAllText(configPath))!.AsObject();
        config["feed_forward_proj"] = "relu";
        File.WriteAllText(configPath, config.ToJsonString());
        e = Assert.ThrowsExactly<CheckpointException>(() => GlmImageT5Exporter.Export(dir, Path.Combine(_temp, "bad")));
        StringAssert.Contains(e.Message, "feed_forward_proj \"relu\" is not supported");
        config["feed_forward_proj"] = "gated-gelu";
        config["scalable_attention"] = true;
        File.WriteAllText(configPath, config.ToJsonString());
        e = Assert.ThrowsExactly<CheckpointException>(() => GlmImageT5Exporter.Export(dir, Path.Combine(_temp, "bad")));
        StringAssert.Contains(e.Message, "field \"scalable_attention\" is not supported");
    }

    [TestMethod]
    public void APromptsGlyphTextsRunThroughTheExportAndConcatenateToTheirUnpaddedStates()
    {
        var dir = WriteCheckpoint();
        var r = GlmImageT5Exporter.Export(dir, Path.Combine(_temp, "out"));
        using var parity = new Parity(r.Model.ModelPath);
        Tensor Run(long[] ids, long[] mask, int rows, int length) => parity.Run(new Dictionary<string, Tensor>
        {
            ["input_ids"] = tensor(ids, [rows, length]), ["attention_mask"] = tensor(mask, [rows, length]),
        })["glyph_states"];

        // Two texts of different lengths: one leading pad each, the second right-padded.
        var batch = GlmImageGlyphTokenizer.Prepare("a shop sign reading 'OPEN 24 HOURS' above \u201C\u8425\u4E1A\u201D");
        Assert.AreEqual(2, batch.Rows);
        int d = r.Config.DModel;
        var states = Run(batch.InputIds, batch.AttentionMask, batch.Rows, batch.Length).data<float>().ToArray();
        var joined = GlmImageGlyphTokenizer.Concatenate(batch, states, d);
        Assert.AreEqual(batch.Tokens * d, joined.Length);

        // Each text alone (leading pad, no right padding) gives the same states: the padding changes nothing real.
        int offset = 0;
        foreach (var text in batch.Texts)
        {
            var ids = new long[] { GlmImageGlyphTokenizer.PadId }.Concat(GlmImageGlyphTokenizer.Encode(text)).ToArray();
            var alone = Run(ids, Enumerable.Repeat(1L, ids.Length).ToArray(), 1, ids.Length).data<float>().ToArray();
            double worst = alone.Select((v, i) => Math.Abs(v - joined[offset * d + i])).Max();
            Assert.IsTrue(worst < 1e-5, $"'{text}': max difference {worst:E2}");
            offset += ids.Length;
        }
        Assert.AreEqual(batch.Tokens, offset);
    }

    [TestMethod]
    public void AtByT5SmallsWidthsAOneLayerSliceExportsAndPassesParityPastTheMaximumDistance()
    {
        // Random weights at the official widths (d_model 1472, 6 heads of 64 = 384 inner, gated FF 3584, 32 buckets to
        // distance 128); config.json holds only what differs from the defaults. Length 150 reaches every bucket,
        // the saturated ones included, through the graph's distance table.
        var c = GlmImageT5Config.Parse(new JsonObject(), "defaults", keepLayers: 1);
        var dir = Path.Combine(_temp, "text_encoder-full");
        Directory.CreateDirectory(dir);
        manual_seed(5);
        using (no_grad())
        using (var m = new GlmImageT5Encoder(c))
        {
            var stateDict = m.state_dict().Where(kv => kv.Key != GlmImageT5Encoder.TiedName).ToDictionary(kv => kv.Key, kv => kv.Value);
            stateDict["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"].normal_(0, 2);
            TorchSharp.PyBridge.Safetensors.SaveStateDict(Path.Combine(dir, "model.safetensors"), stateDict);
        }
        File.WriteAllText(Path.Combine(dir, "config.json"), new JsonObject { ["model_type"] = "t5", ["num_layers"] = 1, ["architectures"] = new JsonArray("T5EncoderModel") }.ToJsonString());
        var r = GlmImageT5Exporter.Export(dir, Path.Combine(_temp, "out-full"));
        Assert.AreEqual((1472, 384, 1), (r.Config.DModel, r.Config.Inner, r.Config.LayersBuilt));
        foreach (var row in r.Model.Parity) Assert.IsTrue(row.Passed, $"{row.Case}: {row.MaxAbsError:E2}");

        using var model = new GlmImageT5Encoder(r.Config);
        StateDictLoader.Load(model, dir, HfCheckpoint.Open(dir).ReadShards(), optional: n => n == GlmImageT5Encoder.TiedName);
        model.eval();
        using var parity = new Parity(r.Model.ModelPath);
        var sample = GlmImageT5Exporter.Sample(r.Config, 2, 150, 131, new Generator(8));
        using var noGrad = no_grad();
        var row150 = Parity.Compare("b2 L150", "glyph_states", model.Forward(sample["input_ids"], sample["attention_mask"]), parity.Run(sample)["glyph_states"], 1e-4);
        Assert.IsTrue(row150.Passed, $"length 150: {row150.MaxAbsError:E2}");
    }

    [TestMethod]
    public void TheGraphsWeightsCarryTheCheckpointNamesWithOneEmbeddingTable()
    {
        var c = new GlmImageT5Config { DModel = 16, DKv = 4, Heads = 2, DFf = 24, Layers = 2, RelativeBuckets = 8, RelativeMaxDistance = 10 };
        using var m = new GlmImageT5Encoder(c);
        using (no_grad()) m.shared.weight!.fill_(0.5f);
        Assert.AreEqual(0.5f, m.encoder.embed_tokens.weight![3, 7].item<float>(), "embed_tokens is the shared tensor, not a copy");
        var names = GlmImageT5Graph.Build(m).Graph.Initializer.Select(t => t.Name).Where(n => n.EndsWith(".weight", StringComparison.Ordinal)).ToList();
        var expected = m.state_dict().Keys.Where(k => k != GlmImageT5Encoder.TiedName).ToList();
        CollectionAssert.AreEquivalent(expected, names);
        Assert.AreEqual(1, names.Count(n => n.EndsWith("relative_attention_bias.weight", StringComparison.Ordinal)), "one position table, block 0's");
    }

    [TestMethod]
    public void TheConfigDefaultsAreByT5Small()
    {
        var c = GlmImageT5Config.Parse(new JsonObject(), "config.json");
        Assert.AreEqual((1472, 64, 3584, 6, 12, 384, 1e-6, 32, 128), (c.DModel, c.DKv, c.DFf, c.Heads, c.Layers, c.VocabSize, c.LayerNormEps, c.RelativeBuckets, c.RelativeMaxDistance));
        Assert.AreEqual(384, c.Inner, "6 heads x 64, not d_model");
    }
}

/// <summary>GLM-Image's glyph text path before and after the encoder: extraction order, ByT5 ids, the leading-pad quirk, concatenation.</summary>
[TestClass]
public sealed class GlmImageT5TokenizerTests
{
    [TestMethod]
    public void IdsAreUtf8BytesPlusThreeWithEosAndTruncationKeepsTheEos()
    {
        CollectionAssert.AreEqual(new long[] { 'h' + 3, 'i' + 3, 1 }, GlmImageGlyphTokenizer.Encode("hi"));
        CollectionAssert.AreEqual(new long[] { 0xC3 + 3, 0xA9 + 3, 1 }, GlmImageGlyphTokenizer.Encode("\u00E9"), "é is two UTF-8 bytes");
        CollectionAssert.AreEqual(new long[] { 0xE5 + 3, 0xAD + 3, 0x97 + 3, 1 }, GlmImageGlyphTokenizer.Encode("\u5B57"), "字 is three");
        CollectionAssert.AreEqual(new long[] { 1 }, GlmImageGlyphTokenizer.Encode(""));
        CollectionAssert.AreEqual(new long[] { 100, 100, 100, 100, 1 }, GlmImageGlyphTokenizer.Encode("aaaaaaaaaa", maxLength: 5));
        Assert.AreEqual(GlmImageGlyphTokenizer.DefaultMaxLength, GlmImageGlyphTokenizer.Encode(new string('x', 5000)).Length);
    }

    [TestMethod]
    public void GlyphTextsComeInTheOfficialQuoteOrderNotInPromptOrder()
    {
        var prompt = "a poster: \"SALE\" then 'hello' then \u300C\u65E5\u672C\u300D then \u201C\u4E2D\u6587\u201D and \"two\"";
        CollectionAssert.AreEqual(new[] { "hello", "\u4E2D\u6587", "SALE", "two", "\u65E5\u672C" }, GlmImageGlyphTokenizer.ExtractGlyphTexts(prompt).ToArray());
        Assert.AreEqual(0, GlmImageGlyphTokenizer.ExtractGlyphTexts("no quotes here").Count);
        // An apostrophe opens a single-quoted text, as in the official pipeline; an unclosed quote yields nothing.
        CollectionAssert.AreEqual(new[] { "t stop " }, GlmImageGlyphTokenizer.ExtractGlyphTexts("don't stop 'x").ToArray());
        CollectionAssert.AreEqual(new[] { "" }, GlmImageGlyphTokenizer.ExtractGlyphTexts("empty ''").ToArray());
    }

    [TestMethod]
    public void AnEvenNumberOfTextsGetsOneLeadingPadAnOddNumberNone()
    {
        var two = GlmImageGlyphTokenizer.Prepare("'ab' and 'c'");
        Assert.AreEqual((2, 4), (two.Rows, two.Length));
        CollectionAssert.AreEqual(new long[] { 0, 'a' + 3, 'b' + 3, 1, /* row 2 */ 0, 'c' + 3, 1, 0 }, two.InputIds);
        CollectionAssert.AreEqual(new long[] { 1, 1, 1, 1, /* row 2 */ 1, 1, 1, 0 }, two.AttentionMask, "leading pads are attended to; right padding is not");
        Assert.AreEqual(7, two.Tokens);

        var three = GlmImageGlyphTokenizer.Prepare("'ab' 'c' 'def'");
        Assert.AreEqual((3, 4), (three.Rows, three.Length));
        CollectionAssert.AreEqual(new long[] { 'a' + 3, 'b' + 3, 1, 0, 'c' + 3, 1, 0, 0, 'd' + 3, 'e' + 3, 'f' + 3, 1 }, three.InputIds);
        CollectionAssert.AreEqual(new long[] { 1, 1, 1, 0, 1, 1, 0, 0, 1, 1, 1, 1 }, three.AttentionMask);

        // No glyph text (and the negative prompt ""): one empty text, one text is odd, so a lone EOS.
        foreach (var prompt in new[] { "a cat", "" })
        {
            var none = GlmImageGlyphTokenizer.Prepare(prompt);
            CollectionAssert.AreEqual(new[] { "" }, none.Texts.ToArray());
            CollectionAssert.AreEqual(new long[] { 1 }, none.InputIds);
            CollectionAssert.AreEqual(new long[] { 1 }, none.AttentionMask);
        }
    }

    [TestMethod]
    public void ConcatenationKeepsTheMaskedInPositionsRowByRow()
    {
        var batch = GlmImageGlyphTokenizer.Prepare("'ab' and 'c'");   // masks [1 1 1 1] [1 1 1 0]
        const int d = 2;
        var states = Enumerable.Range(0, batch.Rows * batch.Length * d).Select(i => (float)i).ToArray();
        var joined = GlmImageGlyphTokenizer.Concatenate(batch, states, d);
        CollectionAssert.AreEqual(new float[] { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13 }, joined, "positions 0-3 of row 1, 0-2 of row 2 (position 3 is padding)");
        var e = Assert.ThrowsExactly<ArgumentException>(() => GlmImageGlyphTokenizer.Concatenate(batch, states.AsSpan(1), d));
        StringAssert.Contains(e.Message, "glyph states hold 15 values");
    }
}
