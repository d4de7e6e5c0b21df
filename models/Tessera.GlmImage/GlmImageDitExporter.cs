using System.Text.Json.Nodes;
using Tessera.Export;
using Tessera.Export.Checkpoints;
using static TorchSharp.torch;

namespace Tessera.GlmImage;

public sealed record GlmImageDitExportResult(GlmImageDitConfig Config, ExportResult Model, LoadReport Weights, int SlicedAwayTensors);

/// <summary>
/// GLM-Image's DiT from the official <c>transformer</c> folder (config.json + diffusion_pytorch_model safetensors) →
/// <c>decoder.onnx</c>, validated against the TorchSharp module on two latent sizes and glyph lengths, with a row
/// whose prior tokens are all dropped (the unconditional branch).
/// </summary>
public static class GlmImageDitExporter
{
    public const double Fp32Tolerance = 1e-4;

    public static GlmImageDitExportResult Export(string transformerDir, string outDir, int? layers = null, IReadOnlyList<ExportVariant>? variants = null,
        int opset = ExportContext.DefaultOpset, TextWriter? log = null)
    {
        log ??= TextWriter.Null;
        var checkpoint = HfCheckpoint.Open(transformerDir);
        var config = GlmImageDitConfig.Parse(checkpoint.Config, Path.Combine(transformerDir, "config.json"), layers);
        log.WriteLine($"GLM-Image DiT: {config.LayersBuilt} of {config.Layers} layers, {config.Heads} x {config.HeadDim} heads, patch {config.PatchSize} over {config.InChannels} channels");
        using var noGrad = no_grad();
        using var model = new GlmImageDit(config);
        model.eval();
        int sliced = 0;
        bool Ignore(string name)
        {
            if (!GlmImageTensorNames.BeyondSlice(name, GlmImageTensorNames.DitLayers, config.LayersBuilt)) return false;
            sliced++;
            return true;
        }
        var weights = StateDictLoader.Load(model, transformerDir, checkpoint.ReadShards(), ignore: Ignore);
        var proto = GlmImageDitGraph.Build(model, opset);
        bool external = model.parameters().Sum(p => p.numel()) * 4 > Tessera.Onnx.OnnxModelFile.ProtobufLimitBytes / 2;
        var result = ValidatedExport.Write(proto, Path.Combine(outDir, "decoder.onnx"), parity => Check(model, parity), variants ?? [], external, log, report =>
        {
            report["stage"] = "glm-image-dit";
            report["checkpoint"] = Path.GetFullPath(transformerDir);
            report["layers"] = $"{config.LayersBuilt} of {config.Layers}";
            report["tensors"] = new JsonObject { ["consumed"] = weights.Consumed.Count, ["beyondSlice"] = sliced, ["missing"] = 0, ["unexpected"] = 0 };
        });
        return new GlmImageDitExportResult(config, result, weights, sliced);
    }

    /// <summary>Seeded inputs for one case: batch, latent size, glyph length; the last row's prior is dropped.</summary>
    public static Dictionary<string, Tensor> Sample(GlmImageDitConfig c, int batch, int h, int w, int glyphs, Generator generator)
    {
        int n = h / c.PatchSize * (w / c.PatchSize);
        var drop = zeros(batch, n, dtype: ScalarType.Bool);
        if (batch > 1) drop[batch - 1] = ones(n, dtype: ScalarType.Bool);
        return new Dictionary<string, Tensor>
        {
            ["latents"] = randn([batch, c.InChannels, h, w], generator: generator),
            ["glyph_states"] = randn([batch, glyphs, c.TextEmbedDim], generator: generator),
            ["prior_ids"] = randint(0, c.CodebookSize, [batch, n], generator: generator),
            ["prior_drop"] = drop,
            ["timestep"] = rand([batch], generator: generator) * 999,
            ["target_size"] = full([batch, 2], (float)(h * 8), dtype: ScalarType.Float32),
            ["crop_coords"] = zeros(batch, 2),
        };
    }

    public static Tensor Reference(GlmImageDit m, IReadOnlyDictionary<string, Tensor> s) =>
        m.Forward(s["latents"], s["glyph_states"], s["prior_ids"], s["prior_drop"], s["timestep"], s["target_size"], s["crop_coords"]);

    private static IReadOnlyList<OutputParity> Check(GlmImageDit model, Parity parity)
    {
        var generator = new Generator(99);
        var rows = new List<OutputParity>();
        int p = model.Config.PatchSize;
        foreach (var (batch, h, w, glyphs) in new[] { (2, 4 * p, 6 * p, 5), (1, 2 * p, 2 * p, 3) })
        {
            var sample = Sample(model.Config, batch, h, w, glyphs, generator);
            rows.Add(Parity.Compare($"b{batch} {h}x{w} glyphs{glyphs}", "velocity", Reference(model, sample), parity.Run(sample)["velocity"], Fp32Tolerance));
        }
        return rows;
    }
}
