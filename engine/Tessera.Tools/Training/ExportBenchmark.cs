using Tessera.Models.Export;
using System.Diagnostics;
using System.Text.Json.Nodes;
using Tessera.Abstractions;
using Tessera.Data.Prompting;
using Tessera.Engine;
using Tessera.Export;
using Tessera.Models;
using Tessera.Models.Ar;
using Tessera.Models.Dit;
using static TorchSharp.torch;
using Tessera.Cli;
using Tessera.Cli.Bench;

namespace Tessera.Tools.Training;

/// <summary>
/// <c>tessera bench export</c>: the same AR and DiT weights (default configs, seeded) run in TorchSharp eager and, after
/// export, in ONNX Runtime through the engine's CPU device (KV cache kept as device tensors). AR: prefill 24 tokens then
/// 64 decode steps at batch 1 and 8; DiT: forward passes at batch 2 (a CFG pair). Same thread count for both.
/// </summary>
public static class ExportBenchmark
{
    public static JsonObject Run(EngineOptions options, int repeats, TextWriter? log)
    {
        int threads = Environment.ProcessorCount;
        set_num_threads(threads);
        manual_seed(0);
        var vocab = PromptEncoder.ForDataset(512).Vocabulary;
        var arConfig = new ArConfig { VocabSize = vocab.Size };
        using var ar = new ArTransformer(arConfig);
        ar.eval();
        using var dit = new DitDecoder(new DitConfig { Layers = 4 });
        using (no_grad())
            foreach (var p in dit.parameters()) p.add_(randn_like(p) * 0.02f); // off the AdaLN-Zero init, whose output is exactly 0
        dit.eval();
        using var engine = new TesseraEngine(options);
        var compile = new CompileOptions { IntraOpThreads = threads, UseCompiledModelCache = false };
        var arProto = ArExport.Export(ar);
        var ditProto = DitExport.Export(dit);
        byte[] arFp32 = Google.Protobuf.MessageExtensions.ToByteArray(arProto), arInt8 = Google.Protobuf.MessageExtensions.ToByteArray(Tessera.Onnx.OnnxVariants.ToInt8Weights(arProto));
        byte[] ditFp32 = Google.Protobuf.MessageExtensions.ToByteArray(ditProto), ditInt8 = Google.Protobuf.MessageExtensions.ToByteArray(Tessera.Onnx.OnnxVariants.ToInt8Weights(ditProto));
        using var arOnnx = engine.Compile(ModelSource.FromBytes(arFp32, "ar"), "cpu:0", compile);
        using var ditOnnx = engine.Compile(ModelSource.FromBytes(ditFp32, "decoder"), "cpu:0", compile);
        using var arOnnx8 = engine.Compile(ModelSource.FromBytes(arInt8, "ar.int8"), "cpu:0", compile);
        using var ditOnnx8 = engine.Compile(ModelSource.FromBytes(ditInt8, "decoder.int8"), "cpu:0", compile);

        var result = new JsonObject { ["benchmark"] = "export", ["threads"] = threads, ["repeats"] = repeats };
        foreach (int batch in new[] { 1, 8 })
        {
            log?.WriteLine($"AR decode, batch {batch}");
            double torchTps = BenchStats.MedianSeconds(repeats, warmups: 1, run: () => TorchDecode(ar, batch)) is var t ? batch * 64 / t : 0;
            double onnxTps = BenchStats.MedianSeconds(repeats, warmups: 1, run: () => OnnxDecode(arOnnx.Model, arConfig, batch)) is var o ? batch * 64 / o : 0;
            double int8Tps = BenchStats.MedianSeconds(repeats, warmups: 1, run: () => OnnxDecode(arOnnx8.Model, arConfig, batch)) is var q ? batch * 64 / q : 0;
            result[$"arTokensPerSecondBatch{batch}"] = new JsonObject
            {
                ["torchSharpEager"] = Math.Round(torchTps, 1), ["onnxRuntime"] = Math.Round(onnxTps, 1), ["ratio"] = Math.Round(onnxTps / torchTps, 2),
                ["onnxRuntimeInt8"] = Math.Round(int8Tps, 1), ["int8VsFp32"] = Math.Round(int8Tps / onnxTps, 2),
            };
        }
        log?.WriteLine("DiT forward, batch 2");
        var xt = randn(2, 3, 64, 64);
        var tt = tensor(new[] { 0.5f, 0.5f });
        var prior = randint(0, 512, [2, 16, 16]);
        var glyphs = randint(1, 200, [2, 16]);
        double torchDit = BenchStats.MedianSeconds(repeats, warmups: 1, run: () => { using var _ = no_grad(); for (int i = 0; i < 5; i++) dit.Forward(xt, tt, prior, glyphs).Dispose(); }) / 5;
        var feeds = new Dictionary<string, ITensorValue>
        {
            ["x_t"] = HostTensor.Create(xt.data<float>().ToArray(), 2, 3, 64, 64), ["t"] = HostTensor.Create(new[] { 0.5f, 0.5f }, 2),
            ["prior"] = HostTensor.Create(prior.data<long>().ToArray(), 2, 16, 16), ["glyphs"] = HostTensor.Create(glyphs.data<long>().ToArray(), 2, 16),
        };
        double onnxDit = BenchStats.MedianSeconds(repeats, warmups: 1, run: () => { for (int i = 0; i < 5; i++) ditOnnx.Model.Run(feeds).Dispose(); }) / 5;
        double int8Dit = BenchStats.MedianSeconds(repeats, warmups: 1, run: () => { for (int i = 0; i < 5; i++) ditOnnx8.Model.Run(feeds).Dispose(); }) / 5;
        result["ditForwardPerSecondBatch2"] = new JsonObject
        {
            ["torchSharpEager"] = Math.Round(1 / torchDit, 2), ["onnxRuntime"] = Math.Round(1 / onnxDit, 2), ["ratio"] = Math.Round(torchDit / onnxDit, 2),
            ["onnxRuntimeInt8"] = Math.Round(1 / int8Dit, 2), ["int8VsFp32"] = Math.Round(onnxDit / int8Dit, 2),
        };
        // int8 error: the same DiT inputs through both graphs.
        using (var a = ditOnnx.Model.Run(feeds))
        using (var b = ditOnnx8.Model.Run(feeds))
        {
            var x = (float[])a["velocity"].ToHost().Data;
            var y = (float[])b["velocity"].ToHost().Data;
            result["int8"] = new JsonObject
            {
                ["variant"] = ExportVariant.Int8.Description,
                ["arBytesFp32"] = arFp32.Length, ["arBytesInt8"] = arInt8.Length,
                ["ditBytesFp32"] = ditFp32.Length, ["ditBytesInt8"] = ditInt8.Length,
                ["ditMaxAbsErrorVsFp32"] = Math.Round(x.Zip(y, (p, q) => Math.Abs(p - q)).Max(), 5),
                ["ditMaxAbsOutput"] = Math.Round(x.Max(Math.Abs), 4),
            };
        }
        return result;
    }

    private static void TorchDecode(ArTransformer ar, int batch)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var ids = randint(0, 100, [batch, 24]);
        var pos = arange(24).view(1, 24, 1).expand(batch, 24, 3).contiguous();
        var logits = ar.Forward(ids, pos, null, null, out var cache);
        for (int i = 0; i < 64; i++)
        {
            var next = logits.select(1, -1).argmax(-1).view(batch, 1) + 100;
            logits = ar.Forward(next, full([batch, 1, 3], 24L + i, dtype: ScalarType.Int64), null, cache, out cache);
        }
    }

    /// <summary>
    /// Greedy AR decode through the engine with the cache kept as device tensors: a seeded prompt of
    /// <paramref name="promptTokens"/> tokens, then <paramref name="steps"/> steps (each fed its argmax, offset past
    /// the prompt's ids). Shared by bench export and bench decode.
    /// </summary>
    internal static void OnnxDecode(ICompiledModel model, ArConfig c, int batch, int promptTokens = 24, int steps = 64)
    {
        var past = new List<IDeviceTensor>();
        try
        {
            long length = promptTokens;
            var feeds = Feeds(c, Prompt(batch, promptTokens), Positions(batch, 0, promptTokens), length, null);
            for (int i = 0; i <= steps; i++)
            {
                using var outputs = model.Run(feeds);
                var logits = outputs["logits"].ToHost();
                foreach (var p in past) p.Dispose();
                past = Enumerable.Range(0, c.Layers).SelectMany(l => new[] { outputs.Take($"present.{l}.key"), outputs.Take($"present.{l}.value") }).ToList();
                if (i == steps) break;
                int t = (int)logits.Shape[1], k = c.CodebookSize;
                var all = (float[])logits.Data;
                var next = Enumerable.Range(0, batch).Select(b => (100L + Pipeline.TokenSampler.ArgMax(all.AsSpan((b * t + t - 1) * k, k))) % c.VocabSize).ToArray();
                length++;
                feeds = Feeds(c, HostTensor.Create(next, batch, 1), Positions(batch, length - 1, 1), length, past);
            }
        }
        finally
        {
            foreach (var p in past) p.Dispose();
        }
    }

    /// <summary>A seeded prompt (batch, count) of ids below 100.</summary>
    internal static HostTensor Prompt(int batch, int count)
    {
        var rng = new Random(1);
        return HostTensor.Create(Enumerable.Range(0, batch * count).Select(_ => (long)rng.Next(100)).ToArray(), batch, count);
    }

    internal static HostTensor Positions(int batch, long start, int count) =>
        HostTensor.Create(Enumerable.Range(0, batch).SelectMany(_ => Enumerable.Range(0, count).SelectMany(i => Enumerable.Repeat(start + i, 3))).ToArray(), batch, count, 3);

    internal static Dictionary<string, ITensorValue> Feeds(ArConfig c, HostTensor ids, HostTensor positions, long total, List<IDeviceTensor>? past)
    {
        int batch = (int)ids.Shape[0];
        var feeds = new Dictionary<string, ITensorValue>
        {
            ["input_ids"] = ids, ["position_ids"] = positions,
            ["attention_mask"] = HostTensor.Create(Enumerable.Repeat(1L, batch * (int)total).ToArray(), batch, total),
        };
        for (int l = 0; l < c.Layers; l++)
        {
            feeds[$"past_key_values.{l}.key"] = past?[2 * l] ?? (ITensorValue)HostTensor.Zeros(TensorElementType.Float32, batch, c.KvHeads, 0, c.HeadDim);
            feeds[$"past_key_values.{l}.value"] = past?[2 * l + 1] ?? (ITensorValue)HostTensor.Zeros(TensorElementType.Float32, batch, c.KvHeads, 0, c.HeadDim);
        }
        return feeds;
    }


    public static string Table(JsonObject r)
    {
        var w = new StringWriter();
        w.WriteLine($"same weights, {r["threads"]} threads, medians of {r["repeats"]}");
        w.WriteLine($"{"measure",-32}{"TorchSharp",12}{"ORT fp32",10}{"ratio",8}{"ORT int8",10}{"int8/fp32",11}");
        foreach (var key in new[] { "arTokensPerSecondBatch1", "arTokensPerSecondBatch8", "ditForwardPerSecondBatch2" })
        {
            var m = r[key]!;
            w.WriteLine($"{key,-32}{m["torchSharpEager"],12}{m["onnxRuntime"],10}{m["ratio"],8}{m["onnxRuntimeInt8"],10}{m["int8VsFp32"],11}");
        }
        var q = r["int8"]!;
        w.Write($"int8 ({q["variant"]}): AR {q["arBytesFp32"]} → {q["arBytesInt8"]} bytes, DiT {q["ditBytesFp32"]} → {q["ditBytesInt8"]} bytes; " +
                $"DiT max abs error vs fp32 {q["ditMaxAbsErrorVsFp32"]} (outputs up to {q["ditMaxAbsOutput"]})");
        return w.ToString();
    }
}
