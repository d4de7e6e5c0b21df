using System.Text.Json.Nodes;
using Tessera.GlmImage;
using static TorchSharp.torch;

namespace Tessera.Export.Tests;

/// <summary>
/// GLM-Image's DiT from a transformer folder in the official (diffusers) layout: a tiny random checkpoint that
/// PyTorch wrote (Reference/glm_image_dit.py, our reading of the published architecture, not the reference code)
/// exports, passes parity against TorchSharp at two latent sizes, and its ONNX velocity matches PyTorch's.
/// </summary>
[TestClass]
public sealed class GlmImageDitTests
{
    [TestMethod]
    public void TheDitExportsWithDynamicSizesAndMatchesPyTorchIncludingADroppedPriorRow()
    {
        var temp = TestSupport.NewTempDir();
        try
        {
            var dir = Path.Combine(temp, "transformer");
            var (code, stdout, stderr) = TestSupport.Run(TestSupport.Python, [Path.Combine(AppContext.BaseDirectory, "Reference", "glm_image_dit.py"), "--out", dir]);
            Assert.AreEqual(0, code, stdout + stderr);
            var r = GlmImageDitExporter.Export(dir, Path.Combine(temp, "out"));
            Assert.IsTrue(r.Model.Passed, string.Join("; ", r.Model.Parity.Select(p => $"{p.Case} {p.MaxAbsError:E2}")));
            Assert.AreEqual(2, r.Model.Parity.Count, "two latent sizes");

            var reference = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "reference.json")))!;
            float[] F(string k) => reference[k]!.AsArray().Select(x => x!.GetValue<float>()).ToArray();
            var dims = reference["dims"]!.AsArray().Select(x => x!.GetValue<long>()).ToArray(); // b, C, h, w, lg, text, n
            long b = dims[0], n = dims[6];
            var feeds = new Dictionary<string, Tensor>
            {
                ["latents"] = tensor(F("latents"), [b, dims[1], dims[2], dims[3]]),
                ["glyph_states"] = tensor(F("glyph"), [b, dims[4], dims[5]]),
                ["prior_ids"] = tensor(reference["prior"]!.AsArray().Select(x => x!.GetValue<long>()).ToArray(), [b, n]),
                ["prior_drop"] = tensor(reference["drop"]!.AsArray().Select(x => x!.GetValue<bool>()).ToArray(), [b, n]),
                ["timestep"] = tensor(F("timestep"), [b]),
                ["target_size"] = tensor(F("targetSize"), [b, 2]),
                ["crop_coords"] = tensor(F("crop"), [b, 2]),
            };
            using var parity = new Parity(r.Model.ModelPath);
            var got = parity.Run(feeds)["velocity"].data<float>().ToArray();
            var expected = F("velocity");
            Assert.AreEqual(expected.Length, got.Length);
            double worst = expected.Zip(got, (e, g) => Math.Abs(e - g)).Max();
            Assert.IsTrue(worst <= 1e-4, $"max |ONNX - PyTorch| = {worst:E2}");
            Assert.IsTrue(expected.Select(Math.Abs).Max() > 0.1, "the velocity is not degenerate");
        }
        finally
        {
            Directory.Delete(temp, recursive: true);
        }
    }
}
