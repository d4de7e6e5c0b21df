using Tessera.Models.Export;
using System.Text.Json;
using Tessera.Data.Prompting;
using Tessera.Export;
using Tessera.Models;
using Tessera.Models.Ar;
using Tessera.Models.Dit;
using Tessera.Models.Vq;
using Tessera.Onnx;
using Tessera.Pipeline;
using static TorchSharp.torch;

namespace Tessera.TinyPackages;

/// <summary>A complete model package with small random-weight networks, made with the real exporter.</summary>
public static class TinyPackageWriter
{
    /// <summary>Writes the package for <paramref name="seed"/> into <paramref name="dir"/>; the same seed gives the same files.</summary>
    public static string Write(string dir, int seed = 0, bool glyphImage = false)
    {
        Directory.CreateDirectory(dir);
        manual_seed(seed);
        using var noGrad = no_grad();
        var prompts = PromptEncoder.ForDataset(32);
        var ar = new ArTransformer(new ArConfig { Hidden = 48, Layers = 2, Heads = 4, KvHeads = 2, Ffn = 64, VocabSize = prompts.Vocabulary.Size, CodebookSize = 32 });
        var dit = new DitDecoder(new DitConfig { ImageSize = 64, Patch = 4, Hidden = 32, Layers = 1, Heads = 2, CodebookSize = 32, GlyphImage = glyphImage });
        foreach (var p in dit.parameters()) p.add_(randn_like(p) * 0.02f); // off the zero init, so images depend on the inputs
        var vq = new VqTokenizer(new VqConfig { Channels = 8, CodebookSize = 32, CodeDim = 8 });
        OnnxModelFile.Save(ArExport.Export(ar), Path.Combine(dir, "ar.onnx"));
        OnnxModelFile.Save(DitExport.Export(dit), Path.Combine(dir, "decoder.onnx"));
        OnnxModelFile.Save(VqExport.ExportEncoder(vq), Path.Combine(dir, "vq.onnx"));
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), prompts.ToJson());
        var files = new Dictionary<string, string> { ["ar"] = "ar.onnx", ["decoder"] = "decoder.onnx", ["vq"] = "vq.onnx", ["tokenizer"] = "tokenizer.json" };
        if (glyphImage)
        {
            // Token k covers k/32 of its cell with text.
            new Tessera.Data.TextPlacement(Enumerable.Range(0, 32).Select(k => k / 32f).ToArray()).Save(Path.Combine(dir, "placement.json"));
            files["placement"] = "placement.json";
        }
        var c = ar.Config;
        var manifest = new PackageManifest
        {
            Name = "tiny-random",
            Files = files,
            Ar = new ArShape(c.Layers, c.KvHeads, c.HeadDim, c.CodebookSize, c.TargetGrid, c.PreviewGrid, c.RotaryAxes),
            Decoder = new DecoderShape(64, dit.Config.TokenGrid, dit.Config.MaxGlyphs, 32, glyphImage),
            Sampling = new SamplingDefaults { Steps = 4 },
        };
        File.WriteAllText(Path.Combine(dir, ModelPackage.ManifestFile), JsonSerializer.Serialize(manifest, PackageManifest.Json));
        return dir;
    }
}
