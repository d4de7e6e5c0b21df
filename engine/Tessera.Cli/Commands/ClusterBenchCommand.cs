using System.CommandLine;
using System.Text.Json;

namespace Tessera.Cli.Commands;

/// <summary><c>tessera bench cluster</c>: the cluster hop's cost and one vs two decoder nodes (see Bench/ClusterBenchmark).</summary>
internal static class ClusterBenchCommand
{
    public static Command Create()
    {
        var json = new Option<bool>("--json") { Description = "Print JSON." };
        var model = new Option<DirectoryInfo?>("--model") { Description = "Model package (default: the shipped one)." };
        var requests = new Option<int>("--requests") { Description = "Requests at concurrency 1, each way (default 16; twice as many, at least 16, at concurrency 8).", DefaultValueFactory = _ => 16 };
        var steps = new Option<int?>("--steps") { Description = "Decoder steps per image (default: the model's)." };
        var cmd = new Command("cluster", "Cluster vs in-process latency at concurrency 1 (the hop's cost in ms), and one vs two decoder nodes at concurrency 8; starts its own redis-server and nodes on this machine.") { json, model, requests, steps };
        cmd.SetAction(parse => CliErrors.Run(() =>
        {
            if (parse.GetValue(requests) < 1) throw new ArgumentException("--requests must be at least 1.");
            if (parse.GetValue(steps) is < 1) throw new ArgumentException("--steps must be at least 1.");
            var package = Tessera.Pipeline.ModelPackage.Open(parse.GetValue(model)?.FullName ?? Tessera.Pipeline.ModelPackage.DefaultDirectory());
            var result = Bench.ClusterBenchmark.Run(GlobalOptions.Build(parse), package, parse.GetValue(requests), parse.GetValue(steps), parse.GetValue(json) ? null : Console.Error);
            Console.WriteLine(parse.GetValue(json) ? result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) : Bench.ClusterBenchmark.Table(result));
            return 0;
        }));
        return cmd;
    }
}
