using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Tessera.Cli.Bench;

namespace Tessera.Cli.Commands;

/// <summary><c>tessera bench ...</c>: speed measured against a baseline from the same run, printed side by side.</summary>
public static class BenchCommand
{
    public static Command Create()
    {
        var bench = new Command("bench", "Benchmarks. Each prints its figures next to a baseline measured in the same run, with the ratio.");
        bench.Subcommands.Add(Overhead());
        bench.Subcommands.Add(Train());
        bench.Subcommands.Add(Generate());
        bench.Subcommands.Add(Export());
        bench.Subcommands.Add(Serve());
        bench.Subcommands.Add(ClusterBenchCommand.Create());
        bench.Subcommands.Add(Decode());
        bench.Subcommands.Add(GenAi());
        return bench;
    }

    private static Command GenAi()
    {
        var json = new Option<bool>("--json") { Description = "Print JSON." };
        var hidden = new Option<int>("--hidden") { Description = "Width of the Llama-style test model (default 512).", DefaultValueFactory = _ => 512 };
        var layers = new Option<int>("--layers") { Description = "Layers (default 4).", DefaultValueFactory = _ => 4 };
        var vocab = new Option<int>("--vocab") { Description = "Vocabulary (default 32000).", DefaultValueFactory = _ => 32000 };
        var prompt = new Option<int>("--prompt") { Description = "Prompt tokens (default 32).", DefaultValueFactory = _ => 32 };
        var tokens = new Option<int>("--tokens") { Description = "Generated tokens (default 64).", DefaultValueFactory = _ => 64 };
        var batch = new Option<string>("--batch") { Description = "Comma-separated batch sizes (default 1,8).", DefaultValueFactory = _ => "1,8" };
        var repeats = new Option<int>("--repeats") { Description = "Timed runs after a warm-up; the median counts (default 3).", DefaultValueFactory = _ => 3 };
        var cmd = new Command("genai", "The same Llama-style ONNX decoded greedily by Tessera's loop and by ONNX Runtime GenAI's generator (same threads): tokens/s of each and the ratio.")
        {
            json, hidden, layers, vocab, prompt, tokens, batch, repeats,
        };
        cmd.SetAction(parse => CliErrors.Run(() =>
        {
            if (parse.GetValue(hidden) is < 64 or > 8192 || parse.GetValue(hidden) % 64 != 0) throw new ArgumentException("--hidden must be a multiple of 64 from 64 to 8192.");
            if (parse.GetValue(layers) is < 1 or > 64) throw new ArgumentException("--layers must be from 1 to 64.");
            if (parse.GetValue(vocab) is < 16 or > 262144) throw new ArgumentException("--vocab must be from 16 to 262144.");
            if (parse.GetValue(prompt) is < 1 or > 2048 || parse.GetValue(tokens) is < 1 or > 2048) throw new ArgumentException("--prompt and --tokens must be from 1 to 2048.");
            if (parse.GetValue(repeats) is < 1 or > 100) throw new ArgumentException("--repeats must be from 1 to 100.");
            var batches = parse.GetValue(batch)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(b => int.TryParse(b, out var v) && v is >= 1 and <= 64 ? v : throw new ArgumentException($"--batch: '{b}' is not a number from 1 to 64.")).ToArray();
            var result = Training.GenAiBenchmark.Run(GlobalOptions.Build(parse), parse.GetValue(hidden), parse.GetValue(layers), parse.GetValue(vocab), parse.GetValue(prompt),
                parse.GetValue(tokens), batches, parse.GetValue(repeats), parse.GetValue(json) ? null : Console.Error);
            Console.WriteLine(parse.GetValue(json) ? result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) : Training.GenAiBenchmark.Table(result));
            return 0;
        }));
        return cmd;
    }

    private static Command Decode()
    {
        var json = new Option<bool>("--json") { Description = "Print JSON." };
        var widths = new Option<string>("--widths") { Description = "glm-image (GLM-Image's AR widths, random weights) or tiny (the shipped model's config).", DefaultValueFactory = _ => "glm-image" };
        widths.AcceptOnlyFromAmong("glm-image", "tiny");
        var layers = new Option<int>("--layers") { Description = "Transformer layers in the slice (default 2).", DefaultValueFactory = _ => 2 };
        var precision = new Option<string>("--precision") { Description = "Comma-separated: fp32, fp16, int8, int4 (default fp32,int8,int4).", DefaultValueFactory = _ => "fp32,int8,int4" };
        var block = new Option<int>("--block") { Description = "MatMulNBits block size for int8/int4: 32, 64 or 128 (default 32).", DefaultValueFactory = _ => 32 };
        block.AcceptOnlyFromAmong("32", "64", "128");
        var batch = new Option<int>("--batch") { Description = "Sequences decoded together (default 1).", DefaultValueFactory = _ => 1 };
        var tokens = new Option<int>("--tokens") { Description = "Decode steps per run after a 16-token prefill (default 32).", DefaultValueFactory = _ => 32 };
        var repeats = new Option<int>("--repeats") { Description = "Timed runs per precision after a warm-up; the median counts (default 3).", DefaultValueFactory = _ => 3 };
        var device = new Option<string>("--device") { Description = "Device to decode on (default cpu:0).", DefaultValueFactory = _ => "cpu:0" };
        var cmd = new Command("decode", "AR decode tokens/s with the KV cache, the weight bytes each step reads, the bandwidth that achieves, and its ratio to the memory read bandwidth measured in the same run; one row per precision.")
        {
            json, widths, layers, precision, block, batch, tokens, repeats, device,
        };
        cmd.SetAction(parse => CliErrors.Run(() =>
        {
            if (parse.GetValue(layers) is < 1 or > 64) throw new ArgumentException("--layers must be from 1 to 64.");
            if (parse.GetValue(batch) is < 1 or > 256) throw new ArgumentException("--batch must be from 1 to 256.");
            if (parse.GetValue(tokens) is < 1 or > 4096) throw new ArgumentException("--tokens must be from 1 to 4096.");
            if (parse.GetValue(repeats) is < 1 or > 100) throw new ArgumentException("--repeats must be from 1 to 100.");
            var precisions = parse.GetValue(precision)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            var result = Training.DecodeBenchmark.Run(GlobalOptions.Build(parse), parse.GetValue(widths)!, parse.GetValue(layers), precisions, parse.GetValue(block),
                parse.GetValue(batch), parse.GetValue(tokens), parse.GetValue(repeats), parse.GetValue(device)!, parse.GetValue(json) ? null : Console.Error);
            Console.WriteLine(parse.GetValue(json) ? result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) : Training.DecodeBenchmark.Table(result));
            return 0;
        }));
        return cmd;
    }

    private static Command Serve()
    {
        var json = new Option<bool>("--json") { Description = "Print JSON." };
        var model = new Option<DirectoryInfo?>("--model") { Description = "Model package (default: the shipped one)." };
        var requests = new Option<int>("--requests") { Description = "Requests per row (default 64).", DefaultValueFactory = _ => 64 };
        var concurrency = new Option<string>("--concurrency") { Description = "Comma-separated client concurrencies (default 1,4,8,16).", DefaultValueFactory = _ => "1,4,8,16" };
        var maxBatch = new Option<int>("--max-batch") { Description = "Batch limit of the batching server (default 8).", DefaultValueFactory = _ => 8 };
        var steps = new Option<int?>("--steps") { Description = "Decoder steps per image (default: the model's)." };
        var cmd = new Command("serve", "Loopback HTTP load on tessera serve: throughput and p50/p95 latency with batching on and off at each concurrency, and the ratio.") { json, model, requests, concurrency, maxBatch, steps };
        cmd.SetAction(parse => CliErrors.Run(() =>
        {
            var levels = parse.GetValue(concurrency)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(c => int.TryParse(c, out var v) && v is >= 1 and <= 256 ? v : throw new ArgumentException($"--concurrency: '{c}' is not a number from 1 to 256.")).ToArray();
            if (parse.GetValue(requests) < 1) throw new ArgumentException("--requests must be at least 1.");
            if (parse.GetValue(steps) is < 1) throw new ArgumentException("--steps must be at least 1.");
            var package = Tessera.Pipeline.ModelPackage.Open(parse.GetValue(model)?.FullName ?? Tessera.Pipeline.ModelPackage.DefaultDirectory());
            var result = Bench.ServeBenchmark.Run(GlobalOptions.Build(parse), package, parse.GetValue(requests), levels, parse.GetValue(maxBatch), parse.GetValue(steps), parse.GetValue(json) ? null : Console.Error);
            Console.WriteLine(parse.GetValue(json) ? result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) : Bench.ServeBenchmark.Table(result));
            return 0;
        }));
        return cmd;
    }

    private static Command Export()
    {
        var json = new Option<bool>("--json") { Description = "Print JSON." };
        var repeats = new Option<int>("--repeats") { Description = "Runs per measurement after a warm-up; medians are reported (default 3).", DefaultValueFactory = _ => 3 };
        var cmd = new Command("export", "ONNX Runtime (engine, CPU) vs TorchSharp eager on the same AR and DiT weights: AR decode tokens/s at batch 1 and 8 with KV cache, DiT forward passes/s.") { json, repeats };
        cmd.SetAction(parse => CliErrors.Run(() =>
        {
            var result = Training.ExportBenchmark.Run(GlobalOptions.Build(parse), Math.Max(1, parse.GetValue(repeats)), parse.GetValue(json) ? null : Console.Error);
            Console.WriteLine(parse.GetValue(json) ? result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) : Training.ExportBenchmark.Table(result));
            return 0;
        }));
        return cmd;
    }

    private static Command Generate()
    {
        var json = new Option<bool>("--json") { Description = "Print JSON." };
        var model = new Option<DirectoryInfo?>("--model") { Description = "Model package (default: the shipped one)." };
        var repeats = new Option<int>("--repeats") { Description = "Runs per measurement; medians are reported (default 3).", DefaultValueFactory = _ => 3 };
        var prompts = new Option<int>("--prompts") { Description = "Prompts for the pipelining comparison (default 8).", DefaultValueFactory = _ => 8 };
        var cmd = new Command("generate", "End-to-end latency and stage split; KV cache, CFG batching and two-device pipelining, each against its baseline.") { json, model, repeats, prompts };
        cmd.SetAction(parse => CliErrors.Run(() =>
        {
            if (parse.GetValue(repeats) < 1 || parse.GetValue(prompts) < 2) throw new ArgumentException("--repeats must be at least 1 and --prompts at least 2.");
            var package = Tessera.Pipeline.ModelPackage.Open(parse.GetValue(model)?.FullName ?? Tessera.Pipeline.ModelPackage.DefaultDirectory());
            var result = Bench.GenerateBenchmark.Run(GlobalOptions.Build(parse), package, parse.GetValue(repeats), parse.GetValue(prompts), parse.GetValue(json) ? null : Console.Error);
            Console.WriteLine(parse.GetValue(json) ? result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) : Bench.GenerateBenchmark.Table(result));
            return 0;
        }));
        return cmd;
    }

    private static Command Train()
    {
        var json = new Option<bool>("--json") { Description = "Print JSON." };
        var steps = new Option<int>("--steps") { Description = "Training steps per variant per round (default 30).", DefaultValueFactory = _ => 30 };
        var rounds = new Option<int>("--rounds") { Description = "Rounds; variants alternate within each (default 3).", DefaultValueFactory = _ => 3 };
        var cmd = new Command("train", "Training steps/s: background batch producer vs inline, fused EMA vs a separate EMA pass (VQ stage).") { json, steps, rounds };
        cmd.SetAction(parse => CliErrors.Run(() =>
        {
            var result = Training.TrainBenchmark.Run(parse.GetValue(steps), parse.GetValue(rounds), parse.GetValue(json) ? null : Console.Error);
            Console.WriteLine(parse.GetValue(json) ? result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) : Training.TrainBenchmark.Table(result));
            return 0;
        }));
        return cmd;
    }

    private static Command Overhead()
    {
        var json = new Option<bool>("--json") { Description = "Print JSON." };
        var rounds = new Option<int>("--rounds") { Description = "Alternating measurement rounds (default 7).", DefaultValueFactory = _ => 7 };
        var perRound = new Option<int>("--runs-per-round") { Description = "Runs per path per round (default 200).", DefaultValueFactory = _ => 200 };
        var hidden = new Option<int>("--hidden") { Description = "Width of the benchmark MLP (default 1024).", DefaultValueFactory = _ => 1024 };
        var layers = new Option<int>("--layers") { Description = "Layers of the benchmark MLP (default 6; ~1 ms at batch 1 on one core).", DefaultValueFactory = _ => 6 };
        var threads = new Option<int>("--threads") { Description = "Intra-op threads per session (default 1: several sessions' thread pools would otherwise compete on small machines and bias the comparison).", DefaultValueFactory = _ => 1 };
        var cmd = new Command("overhead", "Engine path (plugin device, IOBinding, device tensors) vs a direct ONNX Runtime InferenceSession on the same graph, batch 1.")
        {
            json, rounds, perRound, hidden, layers, threads,
        };
        cmd.SetAction(parse => CliErrors.Run(() =>
        {
            var result = OverheadBenchmark.Run(GlobalOptions.Build(parse), parse.GetValue(hidden), parse.GetValue(layers), parse.GetValue(threads),
                parse.GetValue(rounds), parse.GetValue(perRound), progress: parse.GetValue(json) ? null : Console.Error);
            Console.WriteLine(parse.GetValue(json)
                ? result.ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true })
                : result.ToTable());
            return 0;
        }));
        return cmd;
    }
}
