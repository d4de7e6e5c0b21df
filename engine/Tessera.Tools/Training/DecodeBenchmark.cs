using System.Diagnostics;
using System.Text.Json.Nodes;
using Tessera.Abstractions;
using Tessera.Engine;
using Tessera.Models;
using Tessera.Models.Ar;
using Tessera.Models.Export;
using Tessera.Onnx;
using Tessera.Onnx.Proto;
using static TorchSharp.torch;
using Tessera.Cli;
using Tessera.Cli.Bench;

namespace Tessera.Tools.Training;

/// <summary>
/// <c>tessera bench decode</c>: AR decode with the KV cache against the machine's memory bandwidth. Decoding one
/// token reads every weight once (the batch shares the read), so tokens/s × weight bytes per step is the bandwidth the
/// decode achieves; it is printed next to the read bandwidth measured in the same run (<see cref="MemoryBandwidth"/>)
/// and as their ratio. At GLM-Image's widths: a slice of N layers (hidden 4096, 32 query / 2 KV heads, FFN 13696,
/// partial rotary 0.5, 3-axis positions) with an embedding and the 16512-token vision-vocabulary head, random weights.
/// Each precision is an export variant of the same graph; its logits are compared with fp32's on the same prefill.
/// </summary>
public static class DecodeBenchmark
{
    public const int VisionVocabulary = 16512;
    private const int PrefillTokens = 16;

    public static JsonObject Run(EngineOptions options, string widths, int layers, IReadOnlyList<string> precisions, int block, int batch, int tokens,
        int repeats, string device, TextWriter? log)
    {
        int threads = Environment.ProcessorCount;
        var config = widths switch
        {
            "glm-image" => ArConfig.GlmImageWidths(layers) with { VocabSize = VisionVocabulary, CodebookSize = VisionVocabulary },
            "tiny" => new ArConfig { Layers = layers },
            _ => throw new ArgumentException($"--widths {widths}: use tiny or glm-image."),
        };
        log?.WriteLine($"building the {widths} AR ({config.Layers} layers, hidden {config.Hidden}, {config.Heads}/{config.KvHeads} heads, FFN {config.Ffn}, vocab {config.VocabSize} → {config.CodebookSize}) with random weights");
        ModelProto fp32;
        manual_seed(0);
        using (var model = new ArTransformer(config))
        {
            model.eval();
            using var noGrad = no_grad();
            fp32 = ArExport.Export(model, "bench_decode");
        }
        log?.WriteLine("measuring memory read bandwidth");
        double bandwidth = MemoryBandwidth.MeasureReadGBps(threads: threads);

        var dir = Directory.CreateTempSubdirectory("tessera-bench-decode-");
        var rows = new JsonArray();
        var result = new JsonObject
        {
            ["benchmark"] = "decode", ["widths"] = widths, ["layers"] = config.Layers, ["hidden"] = config.Hidden, ["ffn"] = config.Ffn,
            ["heads"] = config.Heads, ["kvHeads"] = config.KvHeads, ["vocabulary"] = config.CodebookSize, ["batch"] = batch, ["decodeTokens"] = tokens,
            ["threads"] = threads, ["device"] = device, ["repeats"] = repeats, ["memoryReadGBps"] = Math.Round(bandwidth, 2), ["rows"] = rows,
        };
        try
        {
            using var engine = new TesseraEngine(options);
            var compile = new CompileOptions { IntraOpThreads = threads, UseCompiledModelCache = false };
            float[]? referenceLogits = null;
            foreach (var precision in precisions)
            {
                var proto = precision switch
                {
                    "fp32" => fp32,
                    "fp16" => OnnxVariants.ToFloat16Weights(fp32),
                    "int8" => OnnxVariants.ToNBitWeights(fp32, 8, block),
                    "int4" => OnnxVariants.ToNBitWeights(fp32, 4, block),
                    _ => throw new ArgumentException($"--precision {precision}: use fp32, fp16, int8 or int4."),
                };
                var path = Path.Combine(dir.FullName, $"ar.{precision}.onnx");
                var data = OnnxModelFile.Save(proto, path, new ExternalDataOptions());
                long fileBytes = new FileInfo(path).Length + (data is null ? 0 : new FileInfo(data).Length);
                long weightBytes = WeightBytesPerStep(proto, batch, config.Hidden);
                log?.WriteLine($"{precision}: {fileBytes / 1048576.0:F0} MiB on disk; compiling on {device}");
                using var compiled = engine.Compile(ModelSource.FromFile(path), device, compile);
                var logits = PrefillLogits(compiled.Model, config, batch);
                referenceLogits ??= logits;
                double error = referenceLogits.Zip(logits, (a, b) => Math.Abs(a - b)).Max();
                log?.WriteLine($"{precision}: decoding {tokens} tokens at batch {batch}, {repeats} repeats");
                double seconds = BenchStats.MedianSeconds(repeats, warmups: 1, run: () => ExportBenchmark.OnnxDecode(compiled.Model, config, batch, PrefillTokens, tokens));
                double stepsPerSecond = tokens / seconds;
                // Per step: every weight once, plus the KV cache read back (past grows from the prefill).
                double kvBytes = (double)batch * config.Layers * 2 * config.KvHeads * config.HeadDim * 4 * (PrefillTokens + tokens / 2.0);
                double achieved = (weightBytes + kvBytes) * stepsPerSecond / 1e9;
                rows.Add(new JsonObject
                {
                    ["precision"] = precision,
                    ["variant"] = precision switch { "fp16" => "fp16 storage; ONNX Runtime folds the casts, so it reads fp32 weights", "int8" or "int4" => $"MatMulNBits {precision}, block {block}, accuracy_level 4", _ => "fp32" },
                    ["tokensPerSecond"] = Math.Round(batch * stepsPerSecond, 2),
                    ["stepsPerSecond"] = Math.Round(stepsPerSecond, 2),
                    ["weightBytesPerStep"] = weightBytes,
                    ["fileBytes"] = fileBytes,
                    ["achievedGBps"] = Math.Round(achieved, 2),
                    ["bandwidthRatio"] = Math.Round(achieved / bandwidth, 3),
                    ["logitMaxAbsErrorVsFp32"] = Math.Round(error, 5),
                    ["logitMaxAbs"] = Math.Round(referenceLogits.Max(Math.Abs), 3),
                });
            }
        }
        finally
        {
            try { dir.Delete(recursive: true); } catch (IOException) { }
        }
        return result;
    }

    /// <summary>
    /// Weight bytes one decode step reads: every initializer as the runtime holds it (fp16 storage counts as fp32,
    /// since the casts are folded at load), except the embedding table, of which only <paramref name="batch"/> rows are read.
    /// </summary>
    public static long WeightBytesPerStep(ModelProto proto, int batch, int hidden)
    {
        long total = 0;
        foreach (var t in proto.Graph.Initializer)
        {
            long elements = t.Dims.Aggregate(1L, (a, d) => a * d);
            long bytes = t.DataType switch
            {
                (int)TensorElementType.Float16 => elements * 4,
                (int)TensorElementType.UInt8 => elements,
                (int)TensorElementType.Int64 => elements * 8,
                _ => elements * 4,
            };
            if (t.Name.StartsWith("embed.weight", StringComparison.Ordinal)) bytes = (long)batch * hidden * 4;
            total += bytes;
        }
        return total;
    }

    private static float[] PrefillLogits(ICompiledModel model, ArConfig c, int batch)
    {
        using var outputs = model.Run(ExportBenchmark.Feeds(c, ExportBenchmark.Prompt(batch, PrefillTokens), ExportBenchmark.Positions(batch, 0, PrefillTokens), PrefillTokens, null));
        return (float[])outputs["logits"].ToHost().Data;
    }

    public static string Table(JsonObject r)
    {
        var w = new StringWriter();
        w.WriteLine($"AR decode, {r["widths"]} widths: {r["layers"]} layers, hidden {r["hidden"]}, FFN {r["ffn"]}, {r["heads"]}/{r["kvHeads"]} heads, vocabulary {r["vocabulary"]}; " +
                    $"batch {r["batch"]}, {r["decodeTokens"]} tokens, {r["threads"]} threads on {r["device"]}, medians of {r["repeats"]}");
        w.WriteLine($"memory read bandwidth measured in this run: {r["memoryReadGBps"]} GB/s");
        w.WriteLine($"{"precision",-10}{"tokens/s",10}{"MB/step",10}{"GB/s",8}{"of limit",10}{"file MB",9}{"logit err",11}");
        foreach (var row in r["rows"]!.AsArray())
            w.WriteLine($"{row!["precision"],-10}{row["tokensPerSecond"],10}{row["weightBytesPerStep"]!.GetValue<long>() / 1e6,10:F1}{row["achievedGBps"],8}{row["bandwidthRatio"],10}" +
                        $"{row["fileBytes"]!.GetValue<long>() / 1e6,9:F1}{row["logitMaxAbsErrorVsFp32"],11}");
        return w.ToString().TrimEnd();
    }
}
