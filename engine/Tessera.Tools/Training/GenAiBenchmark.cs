using System.Text.Json.Nodes;
using Microsoft.ML.OnnxRuntimeGenAI;
using Tessera.Abstractions;
using Tessera.Engine;
using Tessera.Export.Llm;
using Tessera.Pipeline.Text;
using TorchSharp.PyBridge;
using static TorchSharp.torch;
using Tessera.Cli;
using Tessera.Cli.Bench;

namespace Tessera.Tools.Training;

/// <summary>
/// <c>tessera bench genai</c>: the same Llama-style ONNX (random weights, exported by <c>tessera export llm</c>'s path)
/// decoded greedily by Tessera's loop (<see cref="CausalLmRunner"/>, KV cache as device tensors) and by ONNX Runtime
/// GenAI's generator, at each batch size, with the same intra-op thread count; tokens/s of each and the ratio
/// (Tessera / GenAI), measured in alternating rounds. Both include the prefill. The tokens of the two are compared.
/// </summary>
public static class GenAiBenchmark
{
    public static JsonObject Run(EngineOptions options, int hidden, int layers, int vocab, int promptTokens, int newTokens, int[] batches, int repeats, TextWriter? log)
    {
        int threads = Environment.ProcessorCount;
        var dir = Directory.CreateTempSubdirectory("tessera-bench-genai-");
        try
        {
            var checkpoint = Path.Combine(dir.FullName, "checkpoint");
            Directory.CreateDirectory(checkpoint);
            int heads = Math.Max(1, hidden / 64);
            var config = new JsonObject
            {
                ["model_type"] = "llama", ["vocab_size"] = vocab, ["hidden_size"] = hidden, ["intermediate_size"] = hidden * 8 / 3 / 64 * 64,
                ["num_hidden_layers"] = layers, ["num_attention_heads"] = heads, ["num_key_value_heads"] = Math.Max(1, heads / 4),
                ["max_position_embeddings"] = 4096, ["rms_norm_eps"] = 1e-5, ["rope_theta"] = 10000.0, ["tie_word_embeddings"] = false,
                ["bos_token_id"] = 1, ["eos_token_id"] = vocab - 1,
            };
            File.WriteAllText(Path.Combine(checkpoint, "config.json"), config.ToJsonString());
            log?.WriteLine($"writing a random Llama-style checkpoint: hidden {hidden}, {layers} layers, {heads} heads, vocab {vocab}");
            manual_seed(0);
            using (no_grad())
            using (var model = CausalDecoder.Create(LlmConfig.Parse(JsonNode.Parse(config.ToJsonString())!.AsObject(), "llama", "bench")))
            {
                foreach (var p in model.parameters()) p.normal_(0, 0.05);
                Safetensors.SaveStateDict(Path.Combine(checkpoint, "model.safetensors"), model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value));
            }
            var onnxDir = Path.Combine(dir.FullName, "onnx");
            log?.WriteLine("exporting (with parity)");
            var export = LlmExporter.Export(checkpoint, onnxDir, log: log);
            if (!export.Model.Passed) throw new InvalidOperationException("The export failed parity; nothing to compare.");
            // The same thread count for GenAI's session.
            var genaiConfig = JsonNode.Parse(File.ReadAllText(export.GenAiConfigPath))!;
            genaiConfig["model"]!["decoder"]!["session_options"]!["intra_op_num_threads"] = threads;
            File.WriteAllText(export.GenAiConfigPath, genaiConfig.ToJsonString());

            using var engine = new TesseraEngine(options);
            using var compiled = engine.Compile(ModelSource.FromFile(export.Model.ModelPath), "cpu:0", new CompileOptions { IntraOpThreads = threads, UseCompiledModelCache = false });
            var runner = new CausalLmRunner(compiled.Model, CausalLmShape.FromGenAiConfig(export.GenAiConfigPath));
            using var genai = new Model(onnxDir);

            var rows = new JsonArray();
            foreach (int batch in batches)
            {
                var rng = new Random(batch);
                var prompts = Enumerable.Range(0, batch).Select(_ => (IReadOnlyList<long>)Enumerable.Range(0, promptTokens).Select(_ => (long)rng.Next(2, vocab - 1)).ToArray()).ToList();
                log?.WriteLine($"batch {batch}: {promptTokens}-token prompts, {newTokens} new tokens, {repeats} repeats");
                int[][] ours = [];
                int[][] theirs = [];
                // Alternating rounds (one of each per round, after a warm-up of each), so drift in the machine's speed
                // affects both sides alike; medians of the rounds.
                ours = runner.GreedyBatch(prompts, newTokens);
                theirs = GenAiGreedy(genai, prompts, newTokens);
                var ourTimes = new List<double>();
                var ourRunTimes = new List<double>();
                var theirTimes = new List<double>();
                for (int round = 0; round < repeats; round++)
                {
                    ourTimes.Add(BenchStats.MedianSeconds(1, () => ours = runner.GreedyBatch(prompts, newTokens)));
                    ourRunTimes.Add(runner.LastRunTime.TotalSeconds);
                    theirTimes.Add(BenchStats.MedianSeconds(1, () => theirs = GenAiGreedy(genai, prompts, newTokens)));
                }
                double tessera = BenchStats.Median(ourTimes), reference = BenchStats.Median(theirTimes);
                int agree = Enumerable.Range(0, batch).Count(r => ours[r].SequenceEqual(theirs[r]));
                rows.Add(new JsonObject
                {
                    ["batch"] = batch,
                    ["tesseraTokensPerSecond"] = Math.Round(batch * newTokens / tessera, 1),
                    ["genaiTokensPerSecond"] = Math.Round(batch * newTokens / reference, 1),
                    ["ratio"] = Math.Round(reference / tessera, 3),
                    // Of Tessera's time, the share inside ONNX Runtime's runs; 1 - it is the loop's own work.
                    ["tesseraInRunShare"] = Math.Round(BenchStats.Median(ourRunTimes) / tessera, 3),
                    ["sequencesIdentical"] = $"{agree}/{batch}",
                });
            }
            return new JsonObject
            {
                ["benchmark"] = "genai", ["hidden"] = hidden, ["layers"] = layers, ["vocab"] = vocab, ["promptTokens"] = promptTokens,
                ["newTokens"] = newTokens, ["threads"] = threads, ["repeats"] = repeats, ["genai"] = "Microsoft.ML.OnnxRuntimeGenAI 0.18.0", ["rows"] = rows,
            };
        }
        finally
        {
            try { dir.Delete(recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>GenAI's greedy generator over the same prompts (batch_size = the number of prompts; no early stop at EOS).</summary>
    private static int[][] GenAiGreedy(Model model, IReadOnlyList<IReadOnlyList<long>> prompts, int newTokens)
    {
        int b = prompts.Count, p = prompts[0].Count;
        using var gp = new GeneratorParams(model);
        gp.SetSearchOption("batch_size", b);
        gp.SetSearchOption("max_length", p + newTokens);
        gp.SetSearchOption("min_length", p + newTokens);
        gp.SetSearchOption("do_sample", false);
        using var generator = new Microsoft.ML.OnnxRuntimeGenAI.Generator(model, gp);
        generator.AppendTokens(prompts.SelectMany(x => x.Select(t => (int)t)).ToArray());
        while (!generator.IsDone()) generator.GenerateNextToken();
        return Enumerable.Range(0, b).Select(r => generator.GetSequence((ulong)r).ToArray()[p..]).ToArray();
    }

    public static string Table(JsonObject r)
    {
        var w = new StringWriter();
        w.WriteLine($"same ONNX (Llama-style, hidden {r["hidden"]}, {r["layers"]} layers, vocab {r["vocab"]}), greedy, {r["promptTokens"]}-token prompts + {r["newTokens"]} tokens, " +
                    $"{r["threads"]} threads, medians of {r["repeats"]}; {r["genai"]}");
        w.WriteLine($"{"batch",6}{"tessera tok/s",15}{"genai tok/s",13}{"ratio",8}{"in runs",9}  identical");
        foreach (var row in r["rows"]!.AsArray())
            w.WriteLine($"{row!["batch"],6}{row["tesseraTokensPerSecond"],15}{row["genaiTokensPerSecond"],13}{row["ratio"],8}{row["tesseraInRunShare"],9}  {row["sequencesIdentical"]}");
        w.WriteLine("in runs: the share of Tessera's time inside ONNX Runtime's session runs (the rest is its loop: feeds, logits copy, argmax)");
        return w.ToString().TrimEnd();
    }
}
