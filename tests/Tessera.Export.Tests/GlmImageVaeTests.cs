using System.Text.Json.Nodes;
using Tessera.GlmImage;
using static TorchSharp.torch;

namespace Tessera.Export.Tests;

/// <summary>
/// GLM-Image's VAE decoder from a vae folder in the official (diffusers) layout: a tiny random checkpoint that PyTorch
/// wrote (Reference/glm_image_vae.py, our reading of AutoencoderKL's decode path, not the reference code) exports,
/// passes parity against TorchSharp at two latent sizes, and decodes to PyTorch's image within 1e-4.
/// </summary>
[TestClass]
public sealed class GlmImageVaeTests
{
    [TestMethod]
    public void TheVaeDecoderExportsAndDecodesLikePyTorchWithThePerChannelDenormalisation()
    {
        var temp = TestSupport.NewTempDir();
        try
        {
            var dir = Path.Combine(temp, "vae");
            var (code, stdout, stderr) = TestSupport.Run(TestSupport.Python, [Path.Combine(AppContext.BaseDirectory, "Reference", "glm_image_vae.py"), "--out", dir]);
            Assert.AreEqual(0, code, stdout + stderr);
            var r = GlmImageVaeExport.Export(dir, Path.Combine(temp, "out"));
            Assert.IsTrue(r.Model.Passed, string.Join("; ", r.Model.Parity.Select(p => $"{p.Case} {p.MaxAbsError:E2}")));
            Assert.AreEqual(4, r.EncoderTensors, "encoder.conv_in and quant_conv (weight + bias each) are counted, not loaded");
            Assert.AreEqual(2, r.Config.ScaleFactor);

            var reference = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "reference.json")))!;
            float[] F(string k) => reference[k]!.AsArray().Select(x => x!.GetValue<float>()).ToArray();
            long[] S(string k) => reference[k]!.AsArray().Select(x => x!.GetValue<long>()).ToArray();
            using var parity = new Parity(r.Model.ModelPath);
            var got = parity.Run(new Dictionary<string, Tensor> { ["latents"] = tensor(F("latents"), S("latentShape")) })["image"];
            CollectionAssert.AreEqual(S("imageShape"), got.shape);
            var expected = F("image");
            double worst = expected.Zip(got.data<float>().ToArray(), (e, g) => Math.Abs(e - g)).Max();
            Assert.IsTrue(worst <= 1e-4, $"max |ONNX - PyTorch| = {worst:E2}");
            Assert.IsTrue(expected.Select(Math.Abs).Max() > 0.1, "the image is not degenerate");
        }
        finally
        {
            Directory.Delete(temp, recursive: true);
        }
    }

    [TestMethod]
    public void GroupNormExportsForAnySpatialRankWithAndWithoutAffine()
    {
        manual_seed(2);
        foreach (var (norm, shape) in new[] { (nn.GroupNorm(4, 8, 1e-6), new long[] { 2, 8, 5, 3 }), (nn.GroupNorm(2, 6, 1e-5, affine: false), new long[] { 3, 6, 7 }) })
        {
            if (norm.weight is not null) using (no_grad()) { norm.weight.uniform_(0.5, 1.5); norm.bias!.uniform_(-0.5, 0.5); }
            var x = randn(shape) * 2 + 1;
            var ctx = new ExportContext("gn");
            var input = ctx.Graph.Input("x", Tessera.Abstractions.TensorElementType.Float32, shape.Select(d => Tessera.Abstractions.Dimension.Fixed(d)).ToArray());
            ctx.Graph.Output(ctx.Module("gn", norm, input), "y", Tessera.Abstractions.TensorElementType.Float32, shape.Select(d => Tessera.Abstractions.Dimension.Fixed(d)).ToArray());
            using var parity = new Parity(ctx.Graph.ToBytes());
            var row = Parity.Compare("gn", "y", norm.forward(x), parity.Run(new Dictionary<string, Tensor> { ["x"] = x })["y"], 1e-5);
            Assert.IsTrue(row.Passed, $"rank {shape.Length}: {row.MaxAbsError:E2}");
        }
    }
}
