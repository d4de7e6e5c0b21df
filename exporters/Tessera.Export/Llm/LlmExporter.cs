using System.Text.Json;
using System.Text.Json.Nodes;
using Tessera.Export.Checkpoints;
using static TorchSharp.torch;

namespace Tessera.Export.Llm;

/// <summary>What <see cref="LlmExporter.Export"/> wrote.</summary>
public sealed record LlmExportResult(LlmConfig Config, ExportResult Model, LoadReport Weights, string GenAiConfigPath);

/// <summary>
/// A Hugging Face-style decoder checkpoint (GPT-2 or Llama family) → ONNX in ONNX Runtime GenAI's conventions, like
/// GenAI's model builder but declarative from the config and validated: the weights load into the TorchSharp
/// reference modules (<see cref="CausalDecoder"/>) with every tensor accounted for, the graph is written
/// (<c>model.onnx</c>), run in ONNX Runtime next to the reference on several shapes (batch 2 with a padded row,
/// a decode step with a cache), and reported in <c>model.parity.json</c>; <c>genai_config.json</c> and the
/// checkpoint's tokenizer files go beside it.
/// </summary>
public static class LlmExporter
{
    public const double Fp32Tolerance = 1e-4;

    private static readonly string[] TokenizerFiles =
        ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt", "tokenizer.model", "generation_config.json"];

    public static LlmExportResult Export(string checkpointDir, string outDir, string architecture = "auto", IReadOnlyList<ExportVariant>? variants = null,
        int opset = ExportContext.DefaultOpset, bool externalData = false, TextWriter? log = null)
    {
        log ??= TextWriter.Null;
        var checkpoint = HfCheckpoint.Open(checkpointDir);
        var config = LlmConfig.Parse(checkpoint.Config, architecture, Path.Combine(checkpointDir, "config.json"));
        log.WriteLine($"{LlmConfig.Name(config.Architecture)}: {config.Layers} layers, hidden {config.Hidden}, {config.Heads} heads / {config.KvHeads} KV heads, vocab {config.VocabSize}; weights from {checkpoint.WeightFiles.Count} {checkpoint.Format} file(s)");
        using var noGrad = no_grad();
        using var model = CausalDecoder.Create(config);
        model.eval();
        var weights = StateDictLoader.Load(model, checkpointDir, checkpoint.ReadShards(), model.Rename, model.IsIgnorable, model.IsDerived);
        log.WriteLine($"loaded {weights.Consumed.Count} tensors ({weights.Ignored.Count} ignored{(weights.Derived.Count > 0 ? $", {string.Join(", ", weights.Derived)} tied" : "")})");

        var proto = DecoderGraph.Build(model, opset);
        proto.MetadataProps.Add(new Tessera.Onnx.Proto.StringStringEntryProto { Key = "tessera.checkpoint", Value = Path.GetFullPath(checkpointDir) });
        Directory.CreateDirectory(outDir);
        // Above the protobuf limit the weights must go to external data.
        bool external = externalData || EstimatedBytes(model) > Tessera.Onnx.OnnxModelFile.ProtobufLimitBytes / 2;
        var result = ValidatedExport.Write(proto, Path.Combine(outDir, "model.onnx"), parity => Check(model, parity), variants ?? [], external, log, report =>
        {
            report["architecture"] = LlmConfig.Name(config.Architecture);
            report["checkpoint"] = Path.GetFullPath(checkpointDir);
            report["tensors"] = new JsonObject { ["consumed"] = weights.Consumed.Count, ["ignored"] = weights.Ignored.Count, ["derived"] = weights.Derived.Count, ["missing"] = 0, ["unexpected"] = 0 };
        });
        var genai = Path.Combine(outDir, "genai_config.json");
        File.WriteAllText(genai, GenAiConfig(config, "model.onnx").ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        foreach (var f in TokenizerFiles)
            if (File.Exists(Path.Combine(checkpointDir, f))) File.Copy(Path.Combine(checkpointDir, f), Path.Combine(outDir, f), overwrite: true);
        return new LlmExportResult(config, result, weights, genai);
    }

    private static long EstimatedBytes(CausalDecoder m) => m.parameters().Sum(p => p.numel()) * 4;

    /// <summary>Reference vs ONNX Runtime: prefill at batch 2 (one row left-padded) and batch 1, then a decode step on each cache.</summary>
    private static IReadOnlyList<OutputParity> Check(CausalDecoder model, Parity parity)
    {
        var c = model.Config;
        var rows = new List<OutputParity>();
        var generator = new Generator(1234);
        foreach (var (batch, length) in new[] { (2, 7), (1, 3) })
        {
            var ids = randint(0, c.VocabSize, [batch, length], generator: generator);
            var mask = ones(batch, length, dtype: ScalarType.Int64);
            if (batch > 1) mask[batch - 1, 0] = 0;
            var positions = PositionsFromMask(mask, 0);
            var expected = model.Forward(ids, mask, positions, null, out var present);
            var got = parity.Run(Feeds(c, ids, mask, positions, null));
            rows.Add(Parity.Compare($"prefill b{batch} t{length}", "logits", expected, got["logits"], Fp32Tolerance));
            var nextIds = randint(0, c.VocabSize, [batch, 1], generator: generator);
            var nextMask = cat([mask, ones(batch, 1, dtype: ScalarType.Int64)], 1);
            var nextPositions = PositionsFromMask(nextMask, length);
            var expectedNext = model.Forward(nextIds, nextMask, nextPositions, present, out var presentNext);
            var past = Enumerable.Range(0, c.Layers).Select(i => (got[$"present.{i}.key"], got[$"present.{i}.value"])).ToList();
            var gotNext = parity.Run(Feeds(c, nextIds, nextMask, nextPositions, past));
            rows.Add(Parity.Compare($"decode b{batch} past{length}", "logits", expectedNext, gotNext["logits"], Fp32Tolerance));
            rows.Add(Parity.Compare($"decode b{batch} past{length}", $"present.{c.Layers - 1}.key", presentNext[^1].K, gotNext[$"present.{c.Layers - 1}.key"], Fp32Tolerance));
        }
        return rows;
    }

    /// <summary>Positions as GenAI and Hugging Face derive them from the mask: cumulative count of real tokens − 1 (0 on padding), for entries from <paramref name="start"/> on.</summary>
    public static Tensor PositionsFromMask(Tensor mask, long start)
    {
        var p = mask.cumsum(1, ScalarType.Int64).sub(1).clamp_min(0);
        return p.narrow(1, start, mask.shape[1] - start).contiguous();
    }

    /// <summary>Feeds for the exported graph; a null past is an empty cache (prefill).</summary>
    public static Dictionary<string, Tensor> Feeds(LlmConfig c, Tensor ids, Tensor mask, Tensor positions, IReadOnlyList<(Tensor K, Tensor V)>? past)
    {
        var feeds = new Dictionary<string, Tensor> { ["input_ids"] = ids, ["attention_mask"] = mask, ["position_ids"] = positions };
        for (int i = 0; i < c.Layers; i++)
        {
            feeds[$"past_key_values.{i}.key"] = past?[i].K ?? zeros(ids.shape[0], c.KvHeads, 0, c.HeadDim);
            feeds[$"past_key_values.{i}.value"] = past?[i].V ?? zeros(ids.shape[0], c.KvHeads, 0, c.HeadDim);
        }
        return feeds;
    }

    /// <summary>
    /// ONNX Runtime GenAI's <c>genai_config.json</c> for the exported decoder: input/output names, head geometry,
    /// token ids, and greedy search defaults. The KV cache is not a shared static buffer
    /// (<c>past_present_share_buffer</c> false): the graph concatenates past and new keys, as GenAI's growing-cache mode feeds it.
    /// </summary>
    public static JsonObject GenAiConfig(LlmConfig c, string fileName)
    {
        var model = new JsonObject
        {
            ["type"] = LlmConfig.Name(c.Architecture),
            ["vocab_size"] = c.VocabSize,
            ["context_length"] = c.MaxPositions,
            ["decoder"] = new JsonObject
            {
                ["session_options"] = new JsonObject { ["log_id"] = "onnxruntime-genai", ["provider_options"] = new JsonArray() },
                ["filename"] = fileName,
                ["head_size"] = c.HeadDim,
                ["hidden_size"] = c.Hidden,
                ["num_attention_heads"] = c.Heads,
                ["num_key_value_heads"] = c.KvHeads,
                ["num_hidden_layers"] = c.Layers,
                ["inputs"] = new JsonObject
                {
                    ["input_ids"] = "input_ids", ["attention_mask"] = "attention_mask", ["position_ids"] = "position_ids",
                    ["past_key_names"] = "past_key_values.%d.key", ["past_value_names"] = "past_key_values.%d.value",
                },
                ["outputs"] = new JsonObject
                {
                    ["logits"] = "logits", ["present_key_names"] = "present.%d.key", ["present_value_names"] = "present.%d.value",
                },
            },
        };
        long eos = c.EosTokenIds.Length > 0 ? c.EosTokenIds[0] : c.VocabSize - 1;
        model["bos_token_id"] = c.BosTokenId ?? eos;
        model["eos_token_id"] = c.EosTokenIds.Length > 1 ? new JsonArray(c.EosTokenIds.Select(e => (JsonNode)e).ToArray()) : eos;
        model["pad_token_id"] = c.PadTokenId ?? eos;
        return new JsonObject
        {
            ["model"] = model,
            ["search"] = new JsonObject
            {
                ["do_sample"] = false, ["num_beams"] = 1, ["num_return_sequences"] = 1, ["max_length"] = Math.Min(c.MaxPositions, 4096),
                ["min_length"] = 0, ["past_present_share_buffer"] = false, ["early_stopping"] = true, ["length_penalty"] = 1.0,
                ["repetition_penalty"] = 1.0, ["temperature"] = 1.0, ["top_k"] = 1, ["top_p"] = 1.0,
            },
        };
    }
}
