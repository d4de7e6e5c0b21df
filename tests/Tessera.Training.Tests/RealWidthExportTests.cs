using Tessera.Models.Export;
using Tessera.Export;
using Tessera.Models.Ar;
using static TorchSharp.torch;

namespace Tessera.Training.Tests;

[TestClass]
public sealed class RealWidthExportTests
{
    [TestMethod]
    [TestCategory("Slow")]
    [Timeout(900_000)]
    public void ArExportAtGlmImageRealWidthsPassesParityForPrefillAndDecode()
    {
        var c = ArConfig.GlmImageWidths(layers: 1);
        Assert.AreEqual(128, c.HeadDim);
        Assert.AreEqual(64, c.RotaryDim);
        manual_seed(11);
        using var model = new ArTransformer(c);
        model.eval();
        using var noGrad = no_grad();
        var dir = Path.Combine(Path.GetTempPath(), "tessera-tests", "realwidth-" + Guid.NewGuid().ToString("N"));
        try
        {
            // ~210M parameters (~840 MB): written with external data, as a model of GLM-Image's size must be.
            var path = Path.Combine(dir, "ar.onnx");
            Assert.IsNotNull(Tessera.Onnx.OnnxModelFile.Save(ArExport.Export(model), path, new Tessera.Onnx.ExternalDataOptions()));
            using var parity = new Parity(path);
            var ids = randint(0, c.VocabSize, [2, 12]);
            var pos = arange(12).view(1, 12, 1).expand(2, 12, 3).contiguous();
            var mask = ones(2, 12, dtype: ScalarType.Int64);
            var expected = model.Forward(ids, pos, null, null, out var present);
            var got = parity.Run(StageExporter.ArFeeds(c, ids, pos, mask, null));
            var prefill = Parity.Compare("prefill", "logits", expected, got["logits"], 1e-3);
            var next = randint(0, c.VocabSize, [2, 1]);
            var nextPos = full([2, 1, 3], 12L, dtype: ScalarType.Int64);
            var expectedNext = model.Forward(next, nextPos, null, present, out _);
            var gotNext = parity.Run(StageExporter.ArFeeds(c, next, nextPos, ones(2, 13, dtype: ScalarType.Int64),
                [(got["present.0.key"], got["present.0.value"])]));
            var decode = Parity.Compare("decode", "logits", expectedNext, gotNext["logits"], 1e-3);
            // 4096-wide sums in float32 round differently in the two runtimes; 1e-3 absolute on logits of magnitude ~1
            // still catches any real mapping error (those are O(1)).
            Assert.IsTrue(prefill.Passed, $"prefill max abs error {prefill.MaxAbsError:E2}");
            Assert.IsTrue(decode.Passed, $"decode max abs error {decode.MaxAbsError:E2}");
            Console.WriteLine($"real-width slice: prefill {prefill.MaxAbsError:E2}, decode {decode.MaxAbsError:E2} (max |logit| {expected.abs().max().item<float>():F2})");
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
    }
}
