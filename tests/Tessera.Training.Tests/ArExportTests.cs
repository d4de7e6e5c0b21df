using Tessera.Models.Export;
using Tessera.Export;
using Tessera.Models.Ar;
using static TorchSharp.torch;

namespace Tessera.Training.Tests;

[TestClass]
public sealed class ArExportTests
{
    private static ArTransformer Model(ArConfig c, int seed)
    {
        manual_seed(seed);
        var m = new ArTransformer(c);
        m.eval();
        return m;
    }

    [TestMethod]
    public void ExportedArMatchesTorchSharpForPrefillAndForDecodeWithPastAtBatchTwo()
    {
        var c = new ArConfig { Hidden = 96, Layers = 2, Heads = 4, KvHeads = 2, Ffn = 160, VocabSize = 300, CodebookSize = 40 };
        using var model = Model(c, 5);
        using var parity = new Parity(Google.Protobuf.MessageExtensions.ToByteArray(ArExport.Export(model)));
        using var noGrad = no_grad();

        var ids = randint(0, c.VocabSize, [2, 7]);
        var pos = (arange(7).view(1, 7, 1) * tensor(new long[] { 1, 2, 3 }).view(1, 1, 3)).expand(2, 7, 3).contiguous();
        var mask = ones(2, 7, dtype: ScalarType.Int64);
        mask[1, 0] = 0; mask[1, 1] = 0; // second row is left-padded
        var expected = model.Forward(ids, pos, mask.to(ScalarType.Bool), null, out var present);
        var got = parity.Run(StageExporter.ArFeeds(c, ids, pos, mask, null));
        var rows = new List<OutputParity> { Parity.Compare("prefill", "logits", expected, got["logits"], 1e-4) };
        rows.Add(Parity.Compare("prefill", "present.1.key", present[1].K, got["present.1.key"], 1e-4));

        var nextIds = randint(0, c.VocabSize, [2, 1]);
        var nextPos = full([2, 1, 3], 7L, dtype: ScalarType.Int64);
        var nextMask = cat([mask, ones(2, 1, dtype: ScalarType.Int64)], 1);
        var expectedNext = model.Forward(nextIds, nextPos, nextMask.to(ScalarType.Bool), present, out _);
        var pastFromOnnx = Enumerable.Range(0, c.Layers).Select(i => (got[$"present.{i}.key"], got[$"present.{i}.value"])).ToList();
        var gotNext = parity.Run(StageExporter.ArFeeds(c, nextIds, nextPos, nextMask, pastFromOnnx));
        rows.Add(Parity.Compare("decode", "logits", expectedNext, gotNext["logits"], 1e-4));
        CollectionAssert.AreEqual(new long[] { 2, c.KvHeads, 8, c.HeadDim }, gotNext["present.0.key"].shape);

        foreach (var r in rows) Assert.IsTrue(r.Passed, $"{r.Case} {r.Output}: max abs error {r.MaxAbsError:E2} > {r.Tolerance:E0}");
    }

    [TestMethod]
    public void KvCacheExportDecodes32TokensGreedilyExactlyLikeTorchSharp()
    {
        var c = new ArConfig { Hidden = 64, Layers = 2, Heads = 4, KvHeads = 1, Ffn = 128, VocabSize = 200, CodebookSize = 48 };
        using var model = Model(c, 6);
        using var parity = new Parity(Google.Protobuf.MessageExtensions.ToByteArray(ArExport.Export(model)));
        using var noGrad = no_grad();
        int visualBase = c.VocabSize - c.CodebookSize;
        var prefix = randint(0, visualBase, [1, 6]);
        Tensor Pos(long start, long n) => arange(start, start + n).view(1, n, 1).expand(1, n, 3).contiguous();

        List<long> Decode(Func<Tensor, Tensor, Tensor, List<(Tensor, Tensor)>?, (Tensor Logits, List<(Tensor, Tensor)> Present)> step)
        {
            var tokens = new List<long>();
            var (logits, cache) = step(prefix, Pos(0, 6), ones(1, 6, dtype: ScalarType.Int64), null);
            long length = 6;
            for (int i = 0; i < 32; i++)
            {
                long next = logits[0, -1].argmax().item<long>();
                tokens.Add(next);
                length++;
                (logits, cache) = step(tensor(new[] { visualBase + next }).view(1, 1), Pos(length - 1, 1), ones(1, length, dtype: ScalarType.Int64), cache);
            }
            return tokens;
        }

        var torchTokens = Decode((ids, pos, mask, past) =>
        {
            var l = model.Forward(ids, pos, mask.to(ScalarType.Bool), past, out var present);
            return (l, present);
        });
        var onnxTokens = Decode((ids, pos, mask, past) =>
        {
            var o = parity.Run(StageExporter.ArFeeds(c, ids, pos, mask, past));
            return (o["logits"], Enumerable.Range(0, c.Layers).Select(i => (o[$"present.{i}.key"], o[$"present.{i}.value"])).ToList());
        });
        CollectionAssert.AreEqual(torchTokens, onnxTokens);
        Assert.IsTrue(torchTokens.Distinct().Count() > 3, "the decode is not degenerate");
    }

    [TestMethod]
    public void AnUnmappedModuleFailsTheExportNamingItsPathAndType()
    {
        var ctx = new ExportContext("t");
        var x = ctx.Graph.Input("x", Tessera.Abstractions.TensorElementType.Float32, Tessera.Onnx.OnnxGraphBuilder.Dims(1, 4));
        using var seq = nn.Sequential(("fc", nn.Linear(4, 4)), ("shuffle", nn.ChannelShuffle(2)));
        var e = Assert.ThrowsExactly<UnmappedModuleException>(() => ctx.Module("head", seq, x));
        Assert.AreEqual("head.shuffle", e.ModulePath);
        StringAssert.Contains(e.Message, "TorchSharp.Modules.ChannelShuffle");
        StringAssert.Contains(e.Message, "ModuleMappings.Register<ChannelShuffle>");
    }
}

[TestClass]
public sealed class OpsetTests
{
    [TestMethod]
    public void ArExportsAtEveryAllowedOpsetWithParityAndOthersAreRefused()
    {
        var c = new ArConfig { Hidden = 48, Layers = 1, Heads = 4, KvHeads = 2, Ffn = 64, VocabSize = 100, CodebookSize = 16 };
        manual_seed(12);
        using var model = new ArTransformer(c);
        model.eval();
        using var noGrad = no_grad();
        var ids = randint(0, 100, [2, 6]);
        var pos = arange(6).view(1, 6, 1).expand(2, 6, 3).contiguous();
        var expected = model.Forward(ids, pos, null, null, out _);
        for (int opset = ExportContext.MinOpset; opset <= ExportContext.MaxOpset; opset++)
        {
            var proto = ArExport.Export(model, opset: opset);
            Assert.AreEqual(opset, proto.OpsetImport.Single(o => o.Domain == "").Version);
            using var parity = new Parity(Google.Protobuf.MessageExtensions.ToByteArray(proto));
            var got = parity.Run(StageExporter.ArFeeds(c, ids, pos, ones(2, 6, dtype: ScalarType.Int64), null));
            var r = Parity.Compare($"opset {opset}", "logits", expected, got["logits"], 1e-4);
            Assert.IsTrue(r.Passed, $"opset {opset}: max abs error {r.MaxAbsError:E2}");
        }
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new ExportContext("x", opset: 17));
    }
}
