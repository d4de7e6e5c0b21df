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
        bench.Subcommands.Add(Generate());
        bench.Subcommands.Add(Serve());
        bench.Subcommands.Add(ClusterBenchCommand.Create());
        bench.Subcommands.Add(Instrumentation());
        return bench;
    }

    private static Command Instrumentation()
    {
        var json = new Option<bool>("--json") { Description = "Print JSON." };
        var model = new Option<DirectoryInfo?>("--model") { Description = "Model package (default: the shipped one)." };
        var rounds = new Option<int>("--rounds") { Description = "Alternating measurement rounds (default 5).", DefaultValueFactory = _ => 5 };
        var perRound = new Option<int>("--runs-per-round") { Description = "Runs per path per round (default 4).", DefaultValueFactory = _ => 4 };
        var steps = new Option<int?>("--steps") { Description = "Decoder steps per image (default: the model's)." };
        var cmd = new Command("instrumentation", "What the progress bars (Spectre.Console) and /metrics (prometheus-net) cost per generation and per request, against none, with the A/A noise floor.")
        {
            json, model, rounds, perRound, steps,
        };
        cmd.SetAction(parse => CliErrors.Run(() =>
        {
            if (parse.GetValue(rounds) < 1 || parse.GetValue(perRound) < 1) throw new ArgumentException("--rounds and --runs-per-round must be at least 1.");
            if (parse.GetValue(steps) is < 1) throw new ArgumentException("--steps must be at least 1.");
            var package = Tessera.Pipeline.ModelPackage.Open(parse.GetValue(model)?.FullName ?? Tessera.Pipeline.ModelPackage.DefaultDirectory());
            var result = InstrumentationBenchmark.Run(GlobalOptions.Build(parse), package, parse.GetValue(rounds), parse.GetValue(perRound), parse.GetValue(steps), parse.GetValue(json) ? null : Console.Error);
            Console.WriteLine(parse.GetValue(json) ? result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) : InstrumentationBenchmark.Table(result));
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
        var maxBatch = BatchLimit.Create("auto", "Batch limit of the batching server: a number for both stages, or auto (default): each stage's best batch from the ceiling measurement, as 'serve --max-batch auto' picks it (the ceiling is measured up to 8, or up to the number).");
        var steps = new Option<int?>("--steps") { Description = "Decoder steps per image (default: the model's)." };
        var cmd = new Command("serve", "Loopback HTTP load on tessera serve: throughput and p50/p95 latency with batching on and off at each concurrency, and the ratio.") { json, model, requests, concurrency, maxBatch, steps };
        cmd.SetAction(parse => CliErrors.Run(() =>
        {
            var levels = parse.GetValue(concurrency)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(c => int.TryParse(c, out var v) && v is >= 1 and <= 256 ? v : throw new ArgumentException($"--concurrency: '{c}' is not a number from 1 to 256.")).ToArray();
            if (parse.GetValue(requests) < 1) throw new ArgumentException("--requests must be at least 1.");
            if (parse.GetValue(steps) is < 1) throw new ArgumentException("--steps must be at least 1.");
            var package = Tessera.Pipeline.ModelPackage.Open(parse.GetValue(model)?.FullName ?? Tessera.Pipeline.ModelPackage.DefaultDirectory());
            var result = Bench.ServeBenchmark.Run(GlobalOptions.Build(parse), package, parse.GetValue(requests), levels, BatchLimit.Parse(parse.GetValue(maxBatch)!), parse.GetValue(steps), parse.GetValue(json) ? null : Console.Error);
            Console.WriteLine(parse.GetValue(json) ? result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) : Bench.ServeBenchmark.Table(result));
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
        var device = new Option<string>("--device") { Description = "Device for the end-to-end, KV-cache, CFG and decoder-limit measurements (default cpu:0; e.g. cuda:0). The pipelining comparison always uses cpu:0 + cpu:1.", DefaultValueFactory = _ => "cpu:0" };
        var cmd = new Command("generate", "End-to-end latency and stage split; KV cache, CFG batching and two-device pipelining, each against its baseline.") { json, model, repeats, prompts, device };
        cmd.SetAction(parse => CliErrors.Run(() =>
        {
            if (parse.GetValue(repeats) < 1 || parse.GetValue(prompts) < 2) throw new ArgumentException("--repeats must be at least 1 and --prompts at least 2.");
            var package = Tessera.Pipeline.ModelPackage.Open(parse.GetValue(model)?.FullName ?? Tessera.Pipeline.ModelPackage.DefaultDirectory());
            var result = Bench.GenerateBenchmark.Run(GlobalOptions.Build(parse), package, parse.GetValue(repeats), parse.GetValue(prompts), parse.GetValue(json) ? null : Console.Error, parse.GetValue(device)!);
            Console.WriteLine(parse.GetValue(json) ? result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) : Bench.GenerateBenchmark.Table(result));
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
