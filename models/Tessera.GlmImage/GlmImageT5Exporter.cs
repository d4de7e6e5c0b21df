using System.Text.Json.Nodes;
using Tessera.Export;
using Tessera.Export.Checkpoints;
using static TorchSharp.torch;

namespace Tessera.GlmImage;

public sealed record GlmImageT5ExportResult(GlmImageT5Config Config, ExportResult Model, LoadReport Weights, int SlicedAwayTensors);

/// <summary>
/// GLM-Image's glyph encoder from the official <c>text_encoder</c> folder (T5EncoderModel: config.json +
/// model.safetensors) → <c>glyph_encoder.onnx</c>, validated against the TorchSharp module on two shapes, one of them
/// a batch with a right-padded row (as the pipeline pads glyph texts of different lengths).
/// <c>encoder.embed_tokens.weight</c> is tied to <c>shared.weight</c>: it may be absent (it is then derived); if
/// present it must equal <c>shared.weight</c>. <c>layers</c> keeps the first N blocks (block 0, which holds the
/// relative-position table, is always kept); the rest are counted as sliced away.
/// </summary>
public static class GlmImageT5Exporter
{
    public const double Fp32Tolerance = 1e-4;

    public static GlmImageT5ExportResult Export(string textEncoderDir, string outDir, int? layers = null, IReadOnlyList<ExportVariant>? variants = null,
        int opset = ExportContext.DefaultOpset, TextWriter? log = null)
    {
        log ??= TextWriter.Null;
        var checkpoint = HfCheckpoint.Open(textEncoderDir);
        var config = GlmImageT5Config.Parse(checkpoint.Config, Path.Combine(textEncoderDir, "config.json"), layers);
        log.WriteLine($"GLM-Image glyph encoder (T5): {config.LayersBuilt} of {config.Layers} layers, d_model {config.DModel}, {config.Heads} x {config.DKv} heads, gated-GELU {config.DFf}");
        using var noGrad = no_grad();
        using var model = new GlmImageT5Encoder(config);
        model.eval();
        int sliced = 0;
        bool Ignore(string name)
        {
            if (!GlmImageTensorNames.BeyondSlice(name, GlmImageTensorNames.T5Layers, config.LayersBuilt)) return false;
            sliced++;
            return true;
        }
        // The tied copy, when the file has one, is kept aside to be checked against shared.weight after loading
        // (both are copied into the one tensor, so a differing copy would otherwise be overwritten silently).
        Tensor? tiedCopy = null;
        IEnumerable<(string File, Dictionary<string, Tensor> Tensors)> Shards()
        {
            foreach (var shard in checkpoint.ReadShards())
            {
                if (shard.Tensors.TryGetValue(GlmImageT5Encoder.TiedName, out var t)) tiedCopy = t.detach().clone();
                yield return shard;
            }
        }
        var weights = StateDictLoader.Load(model, textEncoderDir, Shards(), ignore: Ignore, optional: name => name == GlmImageT5Encoder.TiedName);
        if (tiedCopy is not null)
        {
            using var _ = tiedCopy;
            if (!tiedCopy.to(ScalarType.Float32).allclose(model.shared.weight!, rtol: 0, atol: 0))
                throw new CheckpointException($"Checkpoint {textEncoderDir}: {GlmImageT5Encoder.TiedName} differs from shared.weight; T5 ties the two, so the file's copies must be equal.");
        }
        log.WriteLine($"loaded {weights.Consumed.Count} tensors; {sliced} in layers beyond the slice; {(weights.Derived.Count > 0 ? "embed_tokens derived from shared" : "embed_tokens equal to shared")}");
        var proto = GlmImageT5Graph.Build(model, opset);
        bool external = model.parameters().Sum(p => p.numel()) * 4 > Tessera.Onnx.OnnxModelFile.ProtobufLimitBytes / 2;
        var result = ValidatedExport.Write(proto, Path.Combine(outDir, "glyph_encoder.onnx"), parity => Check(model, parity), variants ?? [], external, log, report =>
        {
            report["stage"] = "glm-image-glyph-encoder";
            report["checkpoint"] = Path.GetFullPath(textEncoderDir);
            report["layers"] = $"{config.LayersBuilt} of {config.Layers}";
            report["tensors"] = new JsonObject
            {
                ["consumed"] = weights.Consumed.Count, ["derived"] = new JsonArray(weights.Derived.Select(d => (JsonNode)d).ToArray()),
                ["beyondSlice"] = sliced, ["missing"] = 0, ["unexpected"] = 0,
            };
        });
        return new GlmImageT5ExportResult(config, result, weights, sliced);
    }

    /// <summary>
    /// Seeded ids (B, L) over the byte ids 3..vocab−1 and a mask whose last row (when B &gt; 1) keeps only its first
    /// <paramref name="lastRowLength"/> tokens, the rest padded with id 0 and mask 0.
    /// </summary>
    public static Dictionary<string, Tensor> Sample(GlmImageT5Config c, int batch, int length, int lastRowLength, Generator generator)
    {
        var ids = randint(3, c.VocabSize, [batch, length], generator: generator);
        var mask = ones(batch, length, dtype: ScalarType.Int64);
        if (batch > 1 && lastRowLength < length)
        {
            ids[batch - 1, TensorIndex.Slice(lastRowLength)] = 0;
            mask[batch - 1, TensorIndex.Slice(lastRowLength)] = 0;
        }
        return new Dictionary<string, Tensor> { ["input_ids"] = ids, ["attention_mask"] = mask };
    }

    private static IReadOnlyList<OutputParity> Check(GlmImageT5Encoder model, Parity parity)
    {
        // Length 40 crosses the logarithmic buckets' boundaries (distances 16 and 32 at ByT5's settings).
        var generator = new Generator(77);
        var rows = new List<OutputParity>();
        foreach (var (batch, length, kept) in new[] { (2, 40, 23), (1, 9, 9) })
        {
            var sample = Sample(model.Config, batch, length, kept, generator);
            var name = batch > 1 ? $"b{batch} L{length} (row {batch - 1} padded after {kept})" : $"b{batch} L{length}";
            rows.Add(Parity.Compare(name, "glyph_states", model.Forward(sample["input_ids"], sample["attention_mask"]), parity.Run(sample)["glyph_states"], Fp32Tolerance));
        }
        return rows;
    }
}
