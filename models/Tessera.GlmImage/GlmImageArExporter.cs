using System.Text.Json.Nodes;
using Tessera.Export;
using Tessera.Export.Checkpoints;
using Tessera.Export.Llm;
using static TorchSharp.torch;

namespace Tessera.GlmImage;

/// <summary>What the AR export consumed, ignored (and why), and wrote.</summary>
public sealed record GlmImageArExportResult(GlmImageTextConfig Config, ExportResult Model, LoadReport Weights, int ImageToImageTensors, int SlicedAwayTensors);

/// <summary>
/// GLM-Image's AR stage from the official <c>vision_language_encoder</c> folder (config.json + safetensors shards) →
/// <c>ar.onnx</c> with the KV cache, validated against the TorchSharp module (prefill at batch 2 with a padded row
/// and M-RoPE grid positions, then a decode step). The vision tower and VQ tensors (<c>model.visual.*</c>,
/// <c>model.vqmodel.*</c>) belong to image-to-image, which this export does not build: they are counted, not loaded.
/// <c>layers</c> keeps the first N decoder layers (a slice for small machines); the rest are counted as sliced away.
/// </summary>
public static class GlmImageArExporter
{
    public const double Fp32Tolerance = 1e-4;

    public static GlmImageArExportResult Export(string visionLanguageEncoderDir, string outDir, int? layers = null, IReadOnlyList<ExportVariant>? variants = null,
        int opset = ExportContext.DefaultOpset, TextWriter? log = null)
    {
        log ??= TextWriter.Null;
        var checkpoint = HfCheckpoint.Open(visionLanguageEncoderDir);
        var config = GlmImageTextConfig.Parse(checkpoint.Config, Path.Combine(visionLanguageEncoderDir, "config.json"), layers);
        log.WriteLine($"GLM-Image AR: {config.LayersBuilt} of {config.Layers} layers, hidden {config.Hidden}, {config.Heads}/{config.KvHeads} heads, vision vocabulary {config.VisionVocabSize}");
        using var noGrad = no_grad();
        using var model = new GlmImageTextModel(config);
        model.eval();
        int i2i = 0, sliced = 0;
        bool Ignore(string name)
        {
            if (GlmImageTensorNames.IsArImageToImage(name)) { i2i++; return true; }
            if (GlmImageTensorNames.BeyondSlice(name, GlmImageTensorNames.ArLayers, config.LayersBuilt)) { sliced++; return true; }
            return false;
        }
        var weights = StateDictLoader.Load(model, visionLanguageEncoderDir, checkpoint.ReadShards(), ignore: Ignore);
        log.WriteLine($"loaded {weights.Consumed.Count} tensors; {i2i} image-to-image tensors not used; {sliced} in layers beyond the slice");
        var proto = GlmImageArGraph.Build(model, opset);
        bool external = model.parameters().Sum(p => p.numel()) * 4 > Tessera.Onnx.OnnxModelFile.ProtobufLimitBytes / 2;
        var result = ValidatedExport.Write(proto, Path.Combine(outDir, "ar.onnx"), parity => Check(model, parity), variants ?? [], external, log, report =>
        {
            report["stage"] = "glm-image-ar";
            report["checkpoint"] = Path.GetFullPath(visionLanguageEncoderDir);
            report["layers"] = $"{config.LayersBuilt} of {config.Layers}";
            report["tensors"] = new JsonObject { ["consumed"] = weights.Consumed.Count, ["imageToImageNotUsed"] = i2i, ["beyondSlice"] = sliced, ["missing"] = 0, ["unexpected"] = 0 };
        });
        return new GlmImageArExportResult(config, result, weights, i2i, sliced);
    }

    /// <summary>
    /// M-RoPE positions (3, B, S) for a prompt of <paramref name="text"/> tokens followed by a grid of
    /// <paramref name="gridH"/> × <paramref name="gridW"/> image tokens, as the official processor lays them out: text
    /// sequential on all axes; grid token k at (t, t + k / w, t + k % w) with t the position after the text.
    /// </summary>
    public static Tensor GridPositions(int batch, int text, int gridH, int gridW)
    {
        int s = text + gridH * gridW;
        var p = new long[3 * s];
        for (int i = 0; i < text; i++) p[i] = p[s + i] = p[2 * s + i] = i;
        for (int k = 0; k < gridH * gridW; k++)
        {
            p[text + k] = text;
            p[s + text + k] = text + k / gridW;
            p[2 * s + text + k] = text + k % gridW;
        }
        return tensor(p, [3, 1, s]).expand(3, batch, s).contiguous();
    }

    private static IReadOnlyList<OutputParity> Check(GlmImageTextModel model, Parity parity)
    {
        var c = model.Config;
        int layers = model.model.language_model.layers.Count;
        var rows = new List<OutputParity>();
        var generator = new Generator(4321);
        // 5 text tokens and a 2x3 grid at batch 2 (one row left-padded), then one decode step.
        var ids = randint(0, c.VisionVocabSize, [2, 11], generator: generator);
        var mask = ones(2, 11, dtype: ScalarType.Int64);
        mask[1, 0] = 0;
        var positions = GridPositions(2, 5, 2, 3);
        var expected = model.Forward(ids, mask, positions, null, out var present);
        var got = parity.Run(Feeds(layers, c, ids, mask, positions, null));
        rows.Add(Parity.Compare("prefill b2 text5+grid2x3", "logits", expected, got["logits"], Fp32Tolerance));
        var nextIds = randint(0, c.VisionVocabSize, [2, 1], generator: generator);
        var nextMask = cat([mask, ones(2, 1, dtype: ScalarType.Int64)], 1);
        var nextPositions = full([3, 2, 1], 8L, dtype: ScalarType.Int64);
        var expectedNext = model.Forward(nextIds, nextMask, nextPositions, present, out var presentNext);
        var past = Enumerable.Range(0, layers).Select(i => (got[$"present.{i}.key"], got[$"present.{i}.value"])).ToList();
        var gotNext = parity.Run(Feeds(layers, c, nextIds, nextMask, nextPositions, past));
        rows.Add(Parity.Compare("decode b2 past11", "logits", expectedNext, gotNext["logits"], Fp32Tolerance));
        rows.Add(Parity.Compare("decode b2 past11", $"present.{layers - 1}.key", presentNext[^1].K, gotNext[$"present.{layers - 1}.key"], Fp32Tolerance));
        return rows;
    }

    /// <summary>Feeds for <c>ar.onnx</c>; a null past is an empty cache.</summary>
    public static Dictionary<string, Tensor> Feeds(int layers, GlmImageTextConfig c, Tensor ids, Tensor mask, Tensor positions, IReadOnlyList<(Tensor K, Tensor V)>? past)
    {
        var feeds = new Dictionary<string, Tensor> { ["input_ids"] = ids, ["attention_mask"] = mask, ["position_ids"] = positions };
        for (int i = 0; i < layers; i++)
        {
            feeds[$"past_key_values.{i}.key"] = past?[i].K ?? zeros(ids.shape[0], c.KvHeads, 0, c.HeadDim);
            feeds[$"past_key_values.{i}.value"] = past?[i].V ?? zeros(ids.shape[0], c.KvHeads, 0, c.HeadDim);
        }
        return feeds;
    }
}
