using Tessera.Export;
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

namespace Tessera.Models.Export;

/// <summary>
/// Exports a trained stage (EMA weights of a checkpoint) to ONNX and validates it: the TorchSharp module and ONNX
/// Runtime run on the same seeded inputs (several shapes, batch &gt; 1, and for the AR a decode step with past &gt; 0);
/// max absolute / relative error per output is compared with the fp32 tolerance (1e-4) and written as JSON beside the model.
/// </summary>
public static class StageExporter
{
    public const double Fp32Tolerance = 1e-4;

    public static ExportResult Export(string stage, string checkpointOrRun, string outDir, bool externalData, TextWriter log, params ExportVariant[] variants) =>
        Export(stage, checkpointOrRun, outDir, externalData, log, ExportContext.DefaultOpset, variants);

    public static ExportResult Export(string stage, string checkpointOrRun, string outDir, bool externalData, TextWriter log, int opset, params ExportVariant[] variants)
    {
        var (path, step, configJson, tensors, savedStage) = File.Exists(checkpointOrRun) ? LoadFile(checkpointOrRun) : TrainedWeights.Latest(checkpointOrRun, log);
        if (savedStage is not null && savedStage != stage)
        {
            foreach (var t in tensors.Values) t.Dispose();
            throw new ArgumentException($"{path} is a checkpoint of the {savedStage} stage, not {stage}: use --stage {savedStage}, or give the {stage} run's folder.");
        }
        log.WriteLine($"exporting {stage} from {path} (step {step})");
        Directory.CreateDirectory(outDir);
        manual_seed(1234);
        using var noGrad = no_grad();
        (nn.Module Module, Tessera.Onnx.Proto.ModelProto Proto, Func<Parity, IReadOnlyList<OutputParity>> Check) job = stage switch
        {
            "ar" => Ar(JsonSerializer.Deserialize<ArConfig>(configJson, StageConfig.Json)!, tensors, opset),
            "decoder" => Decoder(JsonSerializer.Deserialize<DitConfig>(configJson, StageConfig.Json)!, tensors, opset),
            "vq" => Vq(JsonSerializer.Deserialize<VqConfig>(configJson, StageConfig.Json)!, tensors, opset),
            _ => throw new ArgumentException($"Unknown stage '{stage}'; use ar, decoder or vq."),
        };
        foreach (var t in tensors.Values) t.Dispose();
        job.Proto.MetadataProps.Add(new Tessera.Onnx.Proto.StringStringEntryProto { Key = "tessera.checkpoint", Value = $"{Path.GetFileName(path)} step {step}" });
        var result = ValidatedExport.Write(job.Proto, Path.Combine(outDir, $"{stage}.onnx"), job.Check, variants, externalData, log, report =>
        {
            report["stage"] = stage;
            report["checkpoint"] = path;
            report["step"] = step;
        });
        job.Module.Dispose();
        return result;
    }

    private static (string, long, string, Dictionary<string, Tensor>, string?) LoadFile(string file)
    {
        var (meta, tensors) = Checkpoint.Load(file);
        return (file, meta["step"]!.GetValue<long>(), meta["modelConfig"]!.GetValue<string>(), tensors, meta["stage"]?.GetValue<string>());
    }

    private static (nn.Module, Tessera.Onnx.Proto.ModelProto, Func<Parity, IReadOnlyList<OutputParity>>) Ar(ArConfig c, Dictionary<string, Tensor> tensors, int opset)
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

    private static (nn.Module, Tessera.Onnx.Proto.ModelProto, Func<Parity, IReadOnlyList<OutputParity>>) Decoder(DitConfig c, Dictionary<string, Tensor> tensors, int opset)
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

    private static (nn.Module, Tessera.Onnx.Proto.ModelProto, Func<Parity, IReadOnlyList<OutputParity>>) Vq(VqConfig c, Dictionary<string, Tensor> tensors, int opset)
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
