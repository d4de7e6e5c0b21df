using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Tessera.Cluster;
using Tessera.Engine;
using Tessera.Pipeline;
using Tessera.Pipeline.Batching;

namespace Tessera.Cli.Bench;

/// <summary>
/// <c>tessera bench cluster</c>: (1) per-request latency at concurrency 1 through the cluster (this process as the
/// front, an AR node and a decoder node as processes, Redis membership) against the same model in this process,
/// in alternating requests, so the difference is the hop's cost; (2) throughput at concurrency 8 with one decoder
/// node, then with a second one joined. All processes run on this machine, so (2) is bounded by its cores.
/// </summary>
public static class ClusterBenchmark
{
    private const string Prompt = "the word \"MOON\" in red on a yellow background";

    public static JsonObject Run(EngineOptions options, ModelPackage package, int requests, int? steps, TextWriter? log)
    {
        var redisPath = new[] { "/usr/bin/redis-server", "/usr/sbin/redis-server" }.FirstOrDefault(File.Exists)
            ?? throw new IOException("bench cluster needs redis-server (apt-get install redis-server); it starts its own on a free port.");
        var dir = Directory.CreateTempSubdirectory("tessera-bench-cluster-").FullName;
        var procs = new List<Process>();
        try
        {
            int redisPort = FreePort();
            procs.Add(Start(redisPath, $"--port {redisPort} --bind 127.0.0.1 --save \"\" --appendonly no --dir {dir}", "Ready to accept connections", dir, log));
            var connection = ClusterConnection.Parse($"redis://127.0.0.1:{redisPort}");
            var tessera = typeof(ClusterBenchmark).Assembly.Location;
            Process Node(string name, string stages) => Start("dotnet", $"\"{tessera}\" node --cluster {connection.Text} --stages {stages} --name {name} --silo-port {FreePort()} --gateway-port {FreePort()} --membership-timeout 6", "node ready", dir, log);
            procs.Add(Node("bench-ar", "ar"));
            procs.Add(Node("bench-decoder-1", "decoder"));

            using var engine = new TesseraEngine(options);
            using var generator = new ImageGenerator(engine, package, options.DeviceFor("ar"), options.DeviceFor("decoder"));
            using var local = new BatchingGenerator(generator, new BatchingOptions { QueueCapacity = Math.Max(64, requests) });
            var client = ClusterClient.ConnectAsync(connection, TimeSpan.FromMinutes(5)).GetAwaiter().GetResult();
            try
            {
                var cluster = ClusterGenerator.StartAsync(client, package, new BatchingOptions { QueueCapacity = Math.Max(64, requests) }).GetAwaiter().GetResult();
                try
                {
                    WaitForNodes(cluster, decoders: 1);
                    GenerationRequest Req(int i) => new(Prompt) { Seed = (ulong)i, Steps = steps };
                    // Warm-up: JIT, sessions, the grains' first activation.
                    for (int i = 0; i < 2; i++) { local.GenerateAsync(Req(900 + i)).GetAwaiter().GetResult(); cluster.GenerateAsync(Req(900 + i)).GetAwaiter().GetResult(); }

                    var inProcess = new List<double>();
                    var viaCluster = new List<double>();
                    for (int i = 0; i < requests; i++) // alternating, so machine drift hits both alike
                    {
                        var w = Stopwatch.StartNew();
                        var a = local.GenerateAsync(Req(i)).GetAwaiter().GetResult();
                        inProcess.Add(w.Elapsed.TotalMilliseconds);
                        w.Restart();
                        var b = cluster.GenerateAsync(Req(i)).GetAwaiter().GetResult();
                        viaCluster.Add(w.Elapsed.TotalMilliseconds);
                        if (!a.Png.AsSpan().SequenceEqual(b.Png)) throw new InvalidOperationException($"request {i}: the cluster's PNG differs from this process's; the benchmark stops (a correctness bug, not a speed figure).");
                    }
                    log?.WriteLine($"bench cluster: concurrency 1 done ({requests} requests each way)");

                    double Throughput(int n) // images per second at concurrency 8
                    {
                        var w = Stopwatch.StartNew();
                        using var gate = new SemaphoreSlim(8);
                        Task.WaitAll(Enumerable.Range(0, n).Select(async i =>
                        {
                            await gate.WaitAsync();
                            try { await cluster.GenerateAsync(Req(2000 + i)); } finally { gate.Release(); }
                        }).ToArray());
                        return n / w.Elapsed.TotalSeconds;
                    }
                    int loadN = Math.Max(16, requests * 2);
                    var one = Throughput(loadN);
                    procs.Add(Node("bench-decoder-2", "decoder"));
                    WaitForNodes(cluster, decoders: 2);
                    cluster.GenerateAsync(Req(999)).GetAwaiter().GetResult();
                    var two = Throughput(loadN);
                    log?.WriteLine("bench cluster: concurrency 8 done");

                    double inMed = BenchStats.Median(inProcess), clMed = BenchStats.Median(viaCluster);
                    return new JsonObject
                    {
                        ["model"] = package.Manifest.Name,
                        ["steps"] = steps ?? package.Manifest.Sampling.Steps,
                        ["cores"] = Environment.ProcessorCount,
                        ["requests"] = requests,
                        ["concurrency1"] = new JsonObject
                        {
                            ["inProcessMedianMs"] = Math.Round(inMed, 1),
                            ["clusterMedianMs"] = Math.Round(clMed, 1),
                            ["hopCostMs"] = Math.Round(clMed - inMed, 1),
                            ["ratio"] = Math.Round(clMed / inMed, 2),
                        },
                        ["concurrency8"] = new JsonObject
                        {
                            ["requests"] = loadN,
                            ["oneDecoderNodeImagesPerSecond"] = Math.Round(one, 2),
                            ["twoDecoderNodesImagesPerSecond"] = Math.Round(two, 2),
                            ["ratio"] = Math.Round(two / one, 2),
                        },
                        ["note"] = $"every process (front, AR node, decoder nodes, Redis) shares this machine's {Environment.ProcessorCount} cores, so a second decoder node adds no hardware: the concurrency-8 ratio shows the cost of the split, not the scale-out a second machine would give",
                    };
                }
                finally { cluster.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
            }
            finally { client.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
        }
        finally
        {
            foreach (var p in Enumerable.Reverse(procs))
            {
                try { if (!p.HasExited) { p.Kill(entireProcessTree: true); p.WaitForExit(10_000); } } catch (Exception) { }
                p.Dispose();
            }
            try { Directory.Delete(dir, true); } catch (IOException) { }
        }
    }

    public static string Table(JsonObject r)
    {
        var c1 = r["concurrency1"]!; var c8 = r["concurrency8"]!;
        return $"""
            bench cluster: {r["model"]}, {r["steps"]} steps, {r["cores"]} cores
              concurrency 1 ({r["requests"]} requests, median): in-process {c1["inProcessMedianMs"]} ms, cluster {c1["clusterMedianMs"]} ms, hop {((double)c1["hopCostMs"]! >= 0 ? "+" : "")}{c1["hopCostMs"]} ms ({c1["ratio"]}x)
              concurrency 8 ({c8["requests"]} requests): 1 decoder node {c8["oneDecoderNodeImagesPerSecond"]} img/s, 2 decoder nodes {c8["twoDecoderNodesImagesPerSecond"]} img/s ({c8["ratio"]}x)
              note: {r["note"]}
            """;
    }

    private static void WaitForNodes(ClusterGenerator cluster, int decoders)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            if (cluster.DecoderPlacement.StartsWith($"cluster ({decoders} decoder node") && cluster.ArPlacement.StartsWith("cluster (1 ar node")) return;
            Thread.Sleep(300);
        }
        throw new IOException($"The cluster did not show 1 AR and {decoders} decoder node(s) within 60 s.");
    }

    private static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        try { return ((IPEndPoint)l.LocalEndpoint).Port; } finally { l.Stop(); }
    }

    private static Process Start(string file, string args, string ready, string dir, TextWriter? log)
    {
        var p = new Process { StartInfo = new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = dir } };
        var up = new TaskCompletionSource();
        var tail = new System.Collections.Concurrent.ConcurrentQueue<string>();
        void Line(string? l) { if (l is null) return; tail.Enqueue(l); while (tail.Count > 20) tail.TryDequeue(out _); if (l.Contains(ready)) up.TrySetResult(); }
        p.OutputDataReceived += (_, e) => Line(e.Data);
        p.ErrorDataReceived += (_, e) => Line(e.Data);
        p.Start();
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        if (!up.Task.Wait(TimeSpan.FromSeconds(120)))
        {
            try { p.Kill(true); } catch (Exception) { }
            throw new IOException($"{Path.GetFileName(file)} {args.Split(' ').Skip(1).FirstOrDefault()} did not start: {string.Join(" | ", tail)}");
        }
        log?.WriteLine($"bench cluster: started {Path.GetFileName(file)} {string.Join(' ', args.Split(' ').Skip(1).Take(5))}");
        return p;
    }
}
