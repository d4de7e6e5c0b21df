using System.Text.Json;
using System.Text.Json.Nodes;
using Google.Protobuf;
using Tessera.Models;
using Tessera.Models.Ar;
using Tessera.Models.Dit;
using Tessera.Models.Training;
using Tessera.Models.Vq;
using Tessera.Onnx;
using static TorchSharp.torch;

namespace Tessera.Export;

/// <summary>What an export wrote and how parity went.</summary>
public sealed record ExportResult(string Stage, string ModelPath, string? ExternalDataPath, long Bytes, IReadOnlyList<OutputParity> Parity, string ReportPath)
{
    public bool Passed => Parity.All(p => p.Passed);

    /// <summary>Variants written beside the fp32 model (fp16 weights, int8 weights), each validated on its own.</summary>
    public IReadOnlyList<ExportResult> Variants { get; init; } = [];
}

/// <summary>
/// Exports a trained stage (EMA weights of a checkpoint) to ONNX and validates it: the TorchSharp module and ONNX
/// Runtime run on the same seeded inputs (several shapes, batch &gt; 1, and for the AR a decode step with past &gt; 0);
/// max absolute / relative error per output is compared with the fp32 tolerance (1e-4) and written as JSON beside the model.
/// </summary>
public static class StageExporter
{
    public const double Fp32Tolerance = 1e-4;

    /// <summary>
    /// Tolerance for the fp16-weights variant: rounding each weight to 11 significant bits moves outputs by roughly
    /// 1e-3 of their scale; 5e-2 absolute still catches any structural error (those are O(1)).
    /// </summary>
    public const double Fp16Tolerance = 5e-2;

    /// <summary>
    /// Tolerance for the int8-weights variant (8-bit codes per block of 32, one scale per block): weight error up to
    /// 1/254 of each block's largest magnitude gives output errors of a few 1e-2; 0.25 absolute on logits still
    /// catches a wrong layout or scale (those give errors of order 1 and more).
    /// </summary>
    public const double Int8Tolerance = 0.25;

    /// <summary>A weight variant: its file suffix, description, transform and tolerance.</summary>
    public sealed record Variant(string Suffix, string Description, Func<Tessera.Onnx.Proto.ModelProto, Tessera.Onnx.Proto.ModelProto> Transform, double Tolerance);

    public static readonly Variant Fp16 = new("fp16", "fp16 weights (stored float16, computed float32)", m => OnnxVariants.ToFloat16Weights(m), Fp16Tolerance);
    public static readonly Variant Int8 = new("int8", "int8 weights (com.microsoft.MatMulNBits, 8 bits, block 32, accuracy_level 4: activations quantized to int8 per block)", m => OnnxVariants.ToInt8Weights(m), Int8Tolerance);

    public static ExportResult Export(string stage, string checkpointOrRun, string outDir, bool externalData, TextWriter log, params Variant[] variants) =>
        Export(stage, checkpointOrRun, outDir, externalData, log, ExportContext.DefaultOpset, variants);

    public static ExportResult Export(string stage, string checkpointOrRun, string outDir, bool externalData, TextWriter log, int opset, params Variant[] variants)
    {
        var (path, step, configJson, tensors) = File.Exists(checkpointOrRun) ? LoadFile(checkpointOrRun) : TrainedWeights.Latest(checkpointOrRun, log);
        log.WriteLine($"exporting {stage} from {path} (step {step})");
        Directory.CreateDirectory(outDir);
        manual_seed(1234);
        using var noGrad = no_grad();
        (nn.Module Module, Tessera.Onnx.Proto.ModelProto Proto, Func<Parity, List<OutputParity>> Check) job = stage switch
        {
            "ar" => Ar(JsonSerializer.Deserialize<ArConfig>(configJson, StageConfig.Json)!, tensors, opset),
            "decoder" => Decoder(JsonSerializer.Deserialize<DitConfig>(configJson, StageConfig.Json)!, tensors, opset),
            "vq" => Vq(JsonSerializer.Deserialize<VqConfig>(configJson, StageConfig.Json)!, tensors, opset),
            _ => throw new ArgumentException($"Unknown stage '{stage}'; use ar, decoder or vq."),
        };
        foreach (var t in tensors.Values) t.Dispose();
        job.Proto.MetadataProps.Add(new Tessera.Onnx.Proto.StringStringEntryProto { Key = "tessera.checkpoint", Value = $"{Path.GetFileName(path)} step {step}" });

        var modelPath = Path.Combine(outDir, $"{stage}.onnx");
        var dataPath = OnnxModelFile.Save(job.Proto, modelPath, externalData ? new ExternalDataOptions() : null);
        log.WriteLine($"wrote {modelPath}; validating against TorchSharp");
        using var parity = new Parity(modelPath); // the files as written, external data included
        var rows = job.Check(parity);
        var report = Parity.ToJson(rows);
        report["stage"] = stage;
        report["checkpoint"] = path;
        report["step"] = step;
        report["modelBytes"] = new FileInfo(modelPath).Length + (dataPath is null ? 0 : new FileInfo(dataPath).Length);
        var reportPath = Path.Combine(outDir, $"{stage}.parity.json");
        File.WriteAllText(reportPath, report.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        var result = new ExportResult(stage, modelPath, dataPath, report["modelBytes"]!.GetValue<long>(), rows, reportPath);

        var written = new List<ExportResult>();
        foreach (var v in variants)
        {
            var variantPath = Path.Combine(outDir, $"{stage}.{v.Suffix}.onnx");
            var variantData = OnnxModelFile.Save(v.Transform(job.Proto), variantPath, externalData ? new ExternalDataOptions() : null);
            log.WriteLine($"wrote {variantPath}; validating the {v.Suffix} variant against TorchSharp");
            using var variantParity = new Parity(variantPath);
            var variantRows = job.Check(variantParity).Select(r => r with { Tolerance = Math.Max(r.Tolerance, v.Tolerance) }).ToList();
            var variantReport = Parity.ToJson(variantRows);
            long bytes = new FileInfo(variantPath).Length + (variantData is null ? 0 : new FileInfo(variantData).Length);
            variantReport["variant"] = v.Description;
            variantReport["modelBytes"] = bytes;
            variantReport["sizeRatioToFp32"] = Math.Round((double)bytes / result.Bytes, 3);
            var variantReportPath = Path.Combine(outDir, $"{stage}.{v.Suffix}.parity.json");
            File.WriteAllText(variantReportPath, variantReport.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            written.Add(new ExportResult($"{stage} {v.Suffix}", variantPath, variantData, bytes, variantRows, variantReportPath));
        }
        result = result with { Variants = written };
        job.Module.Dispose();
        return result;
    }

    private static (string, long, string, Dictionary<string, Tensor>) LoadFile(string file)
    {
        var (meta, tensors) = Checkpoint.Load(file);
        return (file, meta["step"]!.GetValue<long>(), meta["modelConfig"]!.GetValue<string>(), tensors);
    }

    private static (nn.Module, Tessera.Onnx.Proto.ModelProto, Func<Parity, List<OutputParity>>) Ar(ArConfig c, Dictionary<string, Tensor> tensors, int opset)
    {
        var model = new ArTransformer(c);
        TrainedWeights.LoadEma(model, tensors);
        model.eval();
        return (model, ArExport.Export(model, opset: opset), parity =>
        {
            var rows = new List<OutputParity>();
            foreach (var (batch, length) in new[] { (1, 9), (3, 20) })
            {
                var ids = randint(0, c.VocabSize, [batch, length]);
                var pos = arange(length).view(1, length, 1).expand(batch, length, c.RotaryAxes).contiguous();
                var mask = ones(batch, length, dtype: ScalarType.Int64);
                if (batch > 1) mask[batch - 1, 0] = 0; // one left-padded row
                var expected = model.Forward(ids, pos, mask.to(ScalarType.Bool), null, out var present);
                var got = parity.Run(ArFeeds(c, ids, pos, mask, null));
                rows.Add(Parity.Compare($"prefill b{batch} t{length}", "logits", expected, got["logits"], Fp32Tolerance));
                // one decode step with the cache the ONNX graph returned
                var nextIds = randint(0, c.VocabSize, [batch, 1]);
                var nextPos = full([batch, 1, c.RotaryAxes], (long)length, dtype: ScalarType.Int64);
                var nextMask = cat([mask, ones(batch, 1, dtype: ScalarType.Int64)], 1);
                var expectedNext = model.Forward(nextIds, nextPos, nextMask.to(ScalarType.Bool), present, out var presentNext);
                var past = Enumerable.Range(0, c.Layers).Select(i => (got[$"present.{i}.key"], got[$"present.{i}.value"])).ToList();
                var gotNext = parity.Run(ArFeeds(c, nextIds, nextPos, nextMask, past));
                rows.Add(Parity.Compare($"decode b{batch} past{length}", "logits", expectedNext, gotNext["logits"], Fp32Tolerance));
                rows.Add(Parity.Compare($"decode b{batch} past{length}", $"present.{c.Layers - 1}.value", presentNext[^1].V, gotNext[$"present.{c.Layers - 1}.value"], Fp32Tolerance));
            }
            return rows;
        });
    }

    /// <summary>Feeds for the AR graph; a null past means an empty cache (prefill).</summary>
    public static Dictionary<string, Tensor> ArFeeds(ArConfig c, Tensor ids, Tensor positions, Tensor mask, IReadOnlyList<(Tensor K, Tensor V)>? past)
    {
        var feeds = new Dictionary<string, Tensor> { ["input_ids"] = ids, ["position_ids"] = positions, ["attention_mask"] = mask };
        for (int i = 0; i < c.Layers; i++)
        {
            feeds[$"past_key_values.{i}.key"] = past?[i].K ?? zeros(ids.shape[0], c.KvHeads, 0, c.HeadDim);
            feeds[$"past_key_values.{i}.value"] = past?[i].V ?? zeros(ids.shape[0], c.KvHeads, 0, c.HeadDim);
        }
        return feeds;
    }

    private static (nn.Module, Tessera.Onnx.Proto.ModelProto, Func<Parity, List<OutputParity>>) Decoder(DitConfig c, Dictionary<string, Tensor> tensors, int opset)
    {
        var model = new DitDecoder(c);
        TrainedWeights.LoadEma(model, tensors);
        model.eval();
        return (model, DitExport.Export(model, opset: opset), parity =>
        {
            var rows = new List<OutputParity>();
            foreach (var batch in new[] { 1, 4 })
            {
                var xt = randn(batch, 3, c.ImageSize, c.ImageSize);
                var t = rand(batch);
                var prior = randint(0, c.CodebookSize, [batch, c.TokenGrid, c.TokenGrid]);
                if (batch > 1) prior[batch - 1] = full([c.TokenGrid, c.TokenGrid], (long)c.NullPrior); // unconditional row
                var glyphs = randint(1, 257, [batch, c.MaxGlyphs]);
                glyphs.narrow(1, 4, c.MaxGlyphs - 4).zero_(); // 4-byte words, the rest padding
                var feeds = new Dictionary<string, Tensor> { ["x_t"] = xt, ["t"] = t, ["prior"] = prior, ["glyphs"] = glyphs };
                Tensor? glyphImage = null;
                if (c.GlyphImage) feeds["glyph_image"] = glyphImage = rand(batch, 1, c.ImageSize, c.ImageSize).gt(0.8f).to_type(ScalarType.Float32);
                var expected = model.Forward(xt, t, prior, glyphs, glyphImage);
                var got = parity.Run(feeds);
                rows.Add(Parity.Compare($"batch {batch}", "velocity", expected, got["velocity"], Fp32Tolerance));
            }
            return rows;
        });
    }

    private static (nn.Module, Tessera.Onnx.Proto.ModelProto, Func<Parity, List<OutputParity>>) Vq(VqConfig c, Dictionary<string, Tensor> tensors, int opset)
    {
        var model = new VqTokenizer(c);
        TrainedWeights.LoadEma(model, tensors);
        model.eval();
        return (model, VqExport.ExportEncoder(model, opset: opset), parity =>
        {
            var images = rand(4, 3, c.ImageSize, c.ImageSize) * 2 - 1;
            var expected = model.Tokenize(images);
            var got = parity.Run(new Dictionary<string, Tensor> { ["image"] = images })["codes"];
            double mismatch = expected.ne(got).to(float32).mean().item<float>();
            // Codes are argmax results: report the fraction that differ (0 expected) as the error.
            return [new OutputParity("batch 4", "codes (fraction differing)", got.shape, mismatch, mismatch, 0.0)];
        });
    }
}
