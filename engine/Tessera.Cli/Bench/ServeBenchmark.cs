using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Tessera.Engine;
using Tessera.Pipeline;
using Tessera.Pipeline.Batching;
using Tessera.Server;

namespace Tessera.Cli.Bench;

/// <summary>
/// A bounded loopback load on <c>tessera serve</c>: N requests at each concurrency, against a server with batching
/// and the same server without (one request per stage at a time), in the same process; throughput, p50 and p95.
/// </summary>
public static class ServeBenchmark
{
    public static JsonObject Run(EngineOptions options, ModelPackage package, int requests, int[] concurrencies, int maxBatch, int? steps, TextWriter? log)
    {
        using var engine = new TesseraEngine(options);
        using var generator = new ImageGenerator(engine, package, options.DeviceFor("ar"), options.DeviceFor("decoder"));
        generator.Generate(new GenerationRequest("the word \"WARM\" in red on a white background") { Steps = steps }); // warm-up: compile, caches
        var rows = new JsonArray();
        foreach (int c in concurrencies)
        {
            var on = Load(generator, new BatchingOptions { MaxArBatch = maxBatch, MaxDecoderBatch = maxBatch, QueueCapacity = Math.Max(64, requests) }, requests, c, steps, log, "on");
            var off = Load(generator, BatchingOptions.Off with { QueueCapacity = Math.Max(64, requests) }, requests, c, steps, log, "off");
            rows.Add(new JsonObject
            {
                ["concurrency"] = c,
                ["batching"] = on,
                ["noBatching"] = off,
                ["throughputRatio"] = Math.Round(on["imagesPerSecond"]!.GetValue<double>() / off["imagesPerSecond"]!.GetValue<double>(), 2),
                ["p50Ratio"] = Math.Round(off["p50Ms"]!.GetValue<double>() / on["p50Ms"]!.GetValue<double>(), 2),
            });
        }
        return new JsonObject
        {
            ["model"] = package.Manifest.Name,
            ["device"] = generator.ArDevice.ToString(),
            ["requests"] = requests,
            ["maxBatch"] = maxBatch,
            ["steps"] = steps ?? package.Manifest.Sampling.Steps,
            ["cores"] = Environment.ProcessorCount,
            ["rows"] = rows,
        };
    }

    private static JsonObject Load(ImageGenerator generator, BatchingOptions batching, int requests, int concurrency, int? steps, TextWriter? log, string label)
    {
        using var queue = new BatchingGenerator(generator, batching);
        var server = TesseraServer.StartAsync(queue, new ServerOptions { Port = 0, Batching = batching, MaxN = 1, RequestTimeout = TimeSpan.FromMinutes(30) }).GetAwaiter().GetResult();
        try
        {
            using var http = new HttpClient { BaseAddress = server.BaseAddress, Timeout = TimeSpan.FromMinutes(30) };
            // Warm-up through HTTP (JIT of the server paths, first allocations at each batch shape) before timing.
            Task.WaitAll(Enumerable.Range(0, Math.Min(concurrency, 4)).Select(i => http.PostAsync("v1/images/generations",
                new StringContent(new JsonObject { ["prompt"] = "the word \"WARM\" in red on a white background", ["seed"] = 1000 + i, ["steps"] = 2 }.ToJsonString(), Encoding.UTF8, "application/json"))).ToArray());
            var latencies = new double[requests];
            int next = -1, failed = 0;
            var wall = Stopwatch.StartNew();
            var workers = Enumerable.Range(0, concurrency).Select(_ => Task.Run(async () =>
            {
                int i;
                while ((i = Interlocked.Increment(ref next)) < requests)
                {
                    var body = new JsonObject { ["prompt"] = $"the word \"{Words[i % Words.Length]}\" in red on a yellow background", ["seed"] = i };
                    if (steps is { } s) body["steps"] = s;
                    var watch = Stopwatch.StartNew();
                    using var response = await http.PostAsync("v1/images/generations", new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"));
                    latencies[i] = watch.Elapsed.TotalMilliseconds;
                    if (response.StatusCode != HttpStatusCode.OK) Interlocked.Increment(ref failed);
                }
            })).ToArray();
            Task.WaitAll(workers);
            wall.Stop();
            if (failed > 0) throw new InvalidOperationException($"{failed} of {requests} requests failed during the load (batching {label}, concurrency {concurrency}).");
            var sorted = latencies.Order().ToArray();
            double P(double q) => sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(q * sorted.Length) - 1)];
            var result = new JsonObject
            {
                ["imagesPerSecond"] = Math.Round(requests / wall.Elapsed.TotalSeconds, 3),
                ["p50Ms"] = Math.Round(P(0.50), 1),
                ["p95Ms"] = Math.Round(P(0.95), 1),
                ["largestArBatch"] = queue.Metrics.LargestArBatch,
                ["largestDecoderBatch"] = queue.Metrics.LargestDecoderBatch,
            };
            log?.WriteLine($"concurrency {concurrency,2}, batching {label,-3}: {result["imagesPerSecond"]} images/s, p50 {result["p50Ms"]} ms, p95 {result["p95Ms"]} ms (largest AR batch {result["largestArBatch"]})");
            return result;
        }
        finally
        {
            server.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }

    private static readonly string[] Words = ["MOON", "CAT", "TREE", "SHIP", "BIRD", "LAMP", "ROSE", "FISH", "KING", "RAIN", "STAR", "BELL", "WOLF", "CAKE", "DOOR", "HILL"];

    public static string Table(JsonObject r)
    {
        var w = new StringBuilder();
        w.AppendLine($"tessera bench serve: {r["requests"]} requests per row over loopback HTTP, model {r["model"]} on {r["device"]} ({r["cores"]} cores), {r["steps"]} decoder steps, max batch {r["maxBatch"]}");
        w.AppendLine($"{"concurrency",11} | {"batching: img/s",15} {"p50 ms",9} {"p95 ms",9} | {"no batching: img/s",18} {"p50 ms",9} {"p95 ms",9} | {"throughput x",12} {"p50 x",6}");
        foreach (var row in r["rows"]!.AsArray())
        {
            var on = row!["batching"]!; var off = row["noBatching"]!;
            w.AppendLine($"{row["concurrency"],11} | {on["imagesPerSecond"],15} {on["p50Ms"],9} {on["p95Ms"],9} | {off["imagesPerSecond"],18} {off["p50Ms"],9} {off["p95Ms"],9} | {row["throughputRatio"],12} {row["p50Ratio"],6}");
        }
        w.Append("no batching = the same server with one request per stage at a time (the AR and decoder stages still overlap).");
        return w.ToString();
    }
}
