using Tessera.Models.Export;
using Tessera.Abstractions;
using Tessera.Export;
using Tessera.Models.Dit;
using Tessera.Models.Layers;
using Tessera.Models.Vq;
using Tessera.Onnx;
using TorchSharp;
using Ar = Tessera.Models.Ar;
using static TorchSharp.torch;

namespace Tessera.Training.Tests;

/// <summary>Each mapped module, exported alone and run in ONNX Runtime, against TorchSharp on random inputs.</summary>
[TestClass]
public sealed class ModuleExportTests
{
    /// <summary>Exports <paramref name="body"/> with one input "x" and compares output "y" with <paramref name="expected"/>.</summary>
    private static OutputParity Check(string name, Tensor x, Func<ExportContext, OnnxValue, OnnxValue> body, Tensor expected, double tolerance = 1e-5)
    {
        FamilyMappings.EnsureRegistered();
        var ctx = new ExportContext(name);
        var input = ctx.Graph.Input("x", x.dtype == ScalarType.Int64 ? TensorElementType.Int64 : TensorElementType.Float32,
            x.shape.Select(d => Dimension.Fixed(d)).ToArray());
        ctx.Graph.Output(body(ctx, input), "y", TensorElementType.Float32, expected.shape.Select(d => Dimension.Fixed(d)).ToArray());
        using var parity = new Parity(ctx.Graph.ToBytes());
        var result = Parity.Compare(name, "y", expected, parity.Run(new Dictionary<string, Tensor> { ["x"] = x })["y"], tolerance);
        Assert.IsTrue(result.Passed, $"{name}: max abs error {result.MaxAbsError:E2} > {tolerance:E0}");
        return result;
    }

    private static void Module(string name, nn.Module<Tensor, Tensor> m, Tensor x, double tolerance = 1e-5)
    {
        using var noGrad = no_grad();
        Check(name, x, (ctx, input) => ctx.Module(name, m, input), m.forward(x), tolerance);
    }

    [TestMethod]
    public void EachBasicModuleExportsWithParity()
    {
        manual_seed(7);
        Module("linear", nn.Linear(12, 7), randn(3, 5, 12));
        Module("linear_nobias", nn.Linear(12, 7, hasBias: false), randn(2, 12));
        Module("embedding", nn.Embedding(50, 8), randint(0, 50, [2, 6]));
        var ln = nn.LayerNorm(16);
        using (no_grad()) { ln.weight!.uniform_(0.5, 1.5); ln.bias!.uniform_(-0.5, 0.5); }
        Module("layernorm", ln, randn(2, 4, 16) * 3);
        Module("layernorm_noaffine", nn.LayerNorm(16, elementwise_affine: false), randn(2, 4, 16));
        var rms = new RmsNorm(16);
        using (no_grad()) rms.weight.uniform_(0.5, 1.5);
        Module("rmsnorm", rms, randn(2, 4, 16) * 2);
        Module("silu", nn.SiLU(), randn(4, 9) * 3);
        Module("gelu", nn.GELU(), randn(4, 9) * 3);
        Module("swiglu", new SwiGlu(16, 40), randn(2, 3, 16));
        Module("conv_patchify", nn.Conv2d(3, 8, 4, stride: 4), randn(2, 3, 16, 16));
        Module("conv_same", nn.Conv2d(4, 6, 3, padding: 1), randn(1, 4, 9, 9));
        Module("conv_transpose", nn.ConvTranspose2d(6, 4, 4, stride: 2, padding: 1), randn(1, 6, 8, 8));
        Module("sequential", nn.Sequential(("a", nn.Conv2d(3, 4, 3, padding: 1)), ("b", nn.SiLU()), ("c", nn.Conv2d(4, 2, 1))), randn(2, 3, 8, 8));
        var te = new TimestepEmbedding(24, 32);
        Module("timestep_embedding", te, tensor(new[] { 0f, 0.25f, 0.9f, 1f }), 1e-4);
    }

    [TestMethod]
    public void GeluTanhApproximationExportsWithParity()
    {
        var x = randn(5, 7) * 3;
        Check("gelu_tanh", x, (ctx, input) => StockMappings.Gelu(ctx, input, tanh: true), nn.functional.gelu(x, TorchSharp.Modules.GELU.Approximate.tanh));
    }

    [TestMethod]
    public void AttentionExportsWithParityForFullCausalGroupedRotaryAndQkNorm()
    {
        manual_seed(8);
        using var noGrad = no_grad();
        foreach (var (heads, kv, qkNorm, causal, rotary) in new[] { (4, 4, false, false, 0), (4, 2, false, true, 8), (6, 3, true, true, 6), (4, 1, true, false, 4) })
        {
            var a = new Attention(48, heads, kv, qkNorm);
            var x = randn(2, 5, 48);
            var positions = (arange(5).view(1, 5, 1) * tensor(new long[] { 1, 2, 3 }).view(1, 1, 3)).expand(2, 5, 3).contiguous();
            (Tensor, Tensor)? rope = rotary > 0 ? Rotary.Tables(positions, rotary, 3) : null;
            var expected = a.Forward(x, rope, causal, null, null, out _, out _);
            var name = $"attention_h{heads}_kv{kv}_qk{qkNorm}_causal{causal}_rot{rotary}";
            Check(name, x, (ctx, input) =>
            {
                (OnnxValue, OnnxValue, int)? r = null;
                if (rotary > 0)
                {
                    var pos = ctx.Graph.Constant<long>(positions.data<long>().ToArray(), 2, 5, 3);
                    var (cos, sin) = AttentionExport.RotaryTables(ctx, pos, rotary, 3, 10000.0);
                    r = (cos, sin, rotary);
                }
                OnnxValue? mask = causal ? ctx.Graph.Constant<bool>(ones(5, 5, dtype: ScalarType.Bool).tril().data<bool>().ToArray(), 1, 1, 5, 5) : null;
                return AttentionExport.Export(ctx, "attn", a, input, r, mask, null, null).Y;
            }, expected, 1e-4);
        }
    }

    [TestMethod]
    public void DitDecoderExportsWithParityIncludingGlyphPaddingAndNullPrior()
    {
        manual_seed(9);
        var cfg = new DitConfig { ImageSize = 32, Patch = 4, Hidden = 48, Layers = 2, Heads = 3, CodebookSize = 20, MaxGlyphs = 8 };
        var model = new DitDecoder(cfg);
        using var noGrad = no_grad();
        foreach (var p in model.parameters()) p.add_(randn_like(p) * 0.05f); // leave the zero init, so the test sees real outputs
        model.eval();
        var xt = randn(3, 3, 32, 32);
        var t = tensor(new[] { 0.1f, 0.5f, 0.95f });
        var prior = randint(0, cfg.CodebookSize, [3, 8, 8]);
        prior[2] = full([8, 8], (long)cfg.NullPrior);
        var glyphs = tensor(Tessera.Data.ModelInputs.GlyphIds("MOON"u8, 8).Concat(Tessera.Data.ModelInputs.GlyphIds("ABCDEF"u8, 8)).Concat(new long[8]).ToArray(), [3, 8]);
        var expected = model.Forward(xt, t, prior, glyphs);
        Assert.IsTrue(expected.abs().max().item<float>() > 1e-3, "outputs are not trivially zero");

        using var parity = new Parity(Google.Protobuf.MessageExtensions.ToByteArray(DitExport.Export(model)));
        var got = parity.Run(new Dictionary<string, Tensor> { ["x_t"] = xt, ["t"] = t, ["prior"] = prior, ["glyphs"] = glyphs });
        var r = Parity.Compare("dit", "velocity", expected, got["velocity"], 1e-4);
        Assert.IsTrue(r.Passed, $"max abs error {r.MaxAbsError:E2}");
    }

    [TestMethod]
    public void AGlyphImageDecoderExportsWithParityAndUsesItsGlyphImage()
    {
        manual_seed(12);
        var cfg = new DitConfig { ImageSize = 32, Patch = 4, Hidden = 48, Layers = 2, Heads = 3, CodebookSize = 20, MaxGlyphs = 8, GlyphImage = true };
        var model = new DitDecoder(cfg);
        using var noGrad = no_grad();
        foreach (var p in model.parameters()) p.add_(randn_like(p) * 0.05f);
        model.eval();
        var xt = randn(2, 3, 32, 32);
        var t = tensor(new[] { 0.3f, 0.7f });
        var prior = randint(0, cfg.CodebookSize, [2, 8, 8]);
        var glyphs = tensor(Tessera.Data.ModelInputs.GlyphIds("MOON"u8, 8).Concat(Tessera.Data.ModelInputs.GlyphIds("SUN"u8, 8)).ToArray(), [2, 8]);
        var glyphImage = rand(2, 1, 32, 32).gt(0.7f).to_type(ScalarType.Float32);
        var expected = model.Forward(xt, t, prior, glyphs, glyphImage);
        Assert.IsTrue((expected - model.Forward(xt, t, prior, glyphs, zeros_like(glyphImage))).abs().max().item<float>() > 1e-3, "the glyph image changes the output");
        Assert.ThrowsExactly<ArgumentException>(() => model.Forward(xt, t, prior, glyphs));

        using var parity = new Parity(Google.Protobuf.MessageExtensions.ToByteArray(DitExport.Export(model)));
        var got = parity.Run(new Dictionary<string, Tensor> { ["x_t"] = xt, ["t"] = t, ["prior"] = prior, ["glyphs"] = glyphs, ["glyph_image"] = glyphImage });
        var r = Parity.Compare("dit-glyph", "velocity", expected, got["velocity"], 1e-4);
        Assert.IsTrue(r.Passed, $"max abs error {r.MaxAbsError:E2}");
    }

    [TestMethod]
    public void VqEncoderExportsAndGivesTheSameCodes()
    {
        manual_seed(10);
        var model = new VqTokenizer(new VqConfig { ImageSize = 32, Downsamples = 2, Channels = 8, CodebookSize = 64, CodeDim = 8 });
        model.eval();
        using var noGrad = no_grad();
        var images = rand(4, 3, 32, 32) * 2 - 1;
        var expected = model.Tokenize(images);
        using var parity = new Parity(Google.Protobuf.MessageExtensions.ToByteArray(VqExport.ExportEncoder(model)));
        var got = parity.Run(new Dictionary<string, Tensor> { ["image"] = images })["codes"];
        CollectionAssert.AreEqual(expected.data<long>().ToArray(), got.data<long>().ToArray());
    }

    [TestMethod]
    public void EveryModuleTypeTheModelFamilyUsesHasAMapping()
    {
        var used = new nn.Module[]
        {
            new VqTokenizer(new VqConfig()), new Ar.ArTransformer(new ArConfig()), new DitDecoder(new DitConfig { Layers = 1 }),
        }.SelectMany(m => m.modules()).Select(m => m.GetType()).Distinct();
        // Composites exported by their own graph code (not the registry):
        var composite = new[] { typeof(VqTokenizer), typeof(Ar.ArTransformer), typeof(Ar.ArLayer), typeof(DitDecoder), typeof(DitBlock), typeof(Attention) };
        FamilyMappings.EnsureRegistered();
        var missing = used.Where(t => !ModuleMappings.CanExport(t)).Except(composite).ToList();
        Assert.AreEqual(0, missing.Count, "unmapped: " + string.Join(", ", missing.Select(t => t.Name)));
    }
}
