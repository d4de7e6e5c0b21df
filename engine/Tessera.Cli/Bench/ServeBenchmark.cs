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
/// Next to them, the in-process ceiling measured in the same run: each stage driven directly (no HTTP, no queue) at
/// each batch size up to the limit, its best images/s, and the smaller of the two (the stages are pipelined, so the
/// slower one bounds the server); every row's throughput is also given as a fraction of that ceiling.
/// </summary>
public static class ServeBenchmark
{
    public static JsonObject Run(EngineOptions options, ModelPackage package, int requests, int[] concurrencies, int maxBatch, int? steps, TextWriter? log)
    {
        using var engine = new TesseraEngine(options);
        using var generator = new ImageGenerator(engine, package, options.DeviceFor("ar"), options.DeviceFor("decoder"));
        generator.Generate(new GenerationRequest("the word \"WARM\" in red on a white background") { Steps = steps }); // warm-up: compile, caches
        var batching = new BatchingOptions { MaxArBatch = maxBatch, MaxDecoderBatch = maxBatch, QueueCapacity = Math.Max(64, requests) };
        // Warm-up of the serving paths (HTTP, queue, batching at several sizes) until the JIT has optimised them, so
        // the first timed server does not pay for it.
        using (var warm = new Target(generator, batching, 4)) warm.Load(0, 48, 4, steps: 1);
        var probe = new CeilingProbe(generator, maxBatch, steps);
        probe.Measure(); // one try before the load, one after: the best of the two per batch size
        var rows = new JsonArray();
        foreach (int c in concurrencies)
        {
            var (on, off) = LoadRow(generator, batching, BatchingOptions.Off with { QueueCapacity = Math.Max(64, requests) }, requests, c, steps, log);
            rows.Add(new JsonObject
            {
                ["concurrency"] = c,
                ["batching"] = on,
                ["noBatching"] = off,
                ["throughputRatio"] = Math.Round(on["imagesPerSecond"]!.GetValue<double>() / off["imagesPerSecond"]!.GetValue<double>(), 2),
                ["p50Ratio"] = Math.Round(off["p50Ms"]!.GetValue<double>() / on["p50Ms"]!.GetValue<double>(), 2),
            });
        }
        probe.Measure();
        var ceiling = probe.Result(log);
        double best = ceiling["imagesPerSecond"]!.GetValue<double>();
        foreach (var row in rows)
        {
            row!["ofCeiling"] = Math.Round(row["batching"]!["imagesPerSecond"]!.GetValue<double>() / best, 2);
            row["noBatchingOfCeiling"] = Math.Round(row["noBatching"]!["imagesPerSecond"]!.GetValue<double>() / best, 2);
        }
        return new JsonObject
        {
            ["model"] = package.Manifest.Name,
            ["device"] = generator.ArDevice.ToString(),
            ["requests"] = requests,
            ["maxBatch"] = maxBatch,
            ["steps"] = steps ?? package.Manifest.Sampling.Steps,
            ["cores"] = Environment.ProcessorCount,
            ["ceiling"] = ceiling,
            ["rows"] = rows,
        };
    }

    /// <summary>
    /// Each stage alone, in process, at batch sizes 1, 2, 4, ... up to the batch limit: the AR writing every token of
    /// B requests in one batch (prefills included), the decoder denoising B images together. Measured twice (before
    /// and after the load; the machine is noisy) and the best kept per size; the ceiling is the slower stage's best
    /// images/s.
    /// </summary>
    private sealed class CeilingProbe
    {
        private readonly ImageGenerator _generator;
        private readonly int[] _sizes;
        private readonly GenerationRequest[] _requests;
        private readonly ImageGenerator.PreparedRequest[] _prepared;
        private readonly int[][] _targets;
        private readonly double[] _ar, _decoder;

        public CeilingProbe(ImageGenerator generator, int maxBatch, int? steps)
        {
            _generator = generator;
            var sizes = new List<int>();
            for (int b = 1; b < maxBatch; b *= 2) sizes.Add(b);
            sizes.Add(maxBatch);
            _sizes = sizes.ToArray();
            _ar = new double[_sizes.Length];
            _decoder = new double[_sizes.Length];
            _requests = Enumerable.Range(0, maxBatch)
                .Select(i => new GenerationRequest($"the word \"{Words[i % Words.Length]}\" in red on a yellow background") { Seed = (ulong)i, Steps = steps }).ToArray();
            _prepared = _requests.Select(generator.Prepare).ToArray();
            // Target grids for the decoder: the AR's own output for these requests.
            _targets = new int[maxBatch][];
            using var ar = generator.CreateArBatch();
            var sequences = _prepared.Select(p => ar.Start(p.Prompt, p.Sampler, p.ForcedPreview)).ToList();
            while (sequences.Any(s => !s.Finished)) ar.Step(sequences);
            for (int i = 0; i < maxBatch; i++) _targets[i] = sequences[i].Visual[ar.Layout.PreviewTokens..];
        }

        public void Measure()
        {
            for (int k = 0; k < _sizes.Length; k++)
            {
                int b = _sizes[k];
                _ar[k] = Math.Max(_ar[k], b / ArSeconds(b));
                _decoder[k] = Math.Max(_decoder[k], b / DecoderSeconds(b));
            }
        }

        private double ArSeconds(int b)
        {
            using var ar = _generator.CreateArBatch();
            var fresh = _requests.Take(b).Select(_generator.Prepare).ToList(); // samplers start from their seeds
            var watch = Stopwatch.StartNew();
            var sequences = fresh.Select(p => ar.Start(p.Prompt, p.Sampler, p.ForcedPreview)).ToList();
            while (sequences.Any(s => !s.Finished)) ar.Step(sequences);
            return watch.Elapsed.TotalSeconds;
        }

        private double DecoderSeconds(int b)
        {
            var watch = Stopwatch.StartNew();
            var jobs = Enumerable.Range(0, b).Select(i =>
            {
                var (n, cfg, shift) = _generator.DecoderSettings(_requests[i]);
                return _generator.Decoder.Start(_targets[i], _generator.Package.Manifest.Ar.TargetGrid, _prepared[i].Prompt.Glyphs, _requests[i].Seed, n, cfg, shift,
                    _generator.DecoderSampler(_requests[i]));
            }).ToList();
            while (jobs.Any(j => !j.Finished)) _generator.Decoder.Step(jobs.Where(j => !j.Finished).ToList());
            return watch.Elapsed.TotalSeconds;
        }

        public JsonObject Result(TextWriter? log)
        {
            JsonObject Stage(string name, double[] rates)
            {
                var perBatch = new JsonObject();
                int bestK = 0;
                for (int k = 0; k < _sizes.Length; k++)
                {
                    perBatch[_sizes[k].ToString(System.Globalization.CultureInfo.InvariantCulture)] = Math.Round(rates[k], 3);
                    if (rates[k] > rates[bestK]) bestK = k;
                }
                log?.WriteLine($"ceiling: {name} alone {string.Join(", ", perBatch.Select(p => $"batch {p.Key} {p.Value} images/s"))}");
                return new JsonObject { ["imagesPerSecond"] = Math.Round(rates[bestK], 3), ["bestBatch"] = _sizes[bestK], ["byBatch"] = perBatch };
            }

            double a = _ar.Max(), d = _decoder.Max();
            return new JsonObject
            {
                ["imagesPerSecond"] = Math.Round(Math.Min(a, d), 3),
                ["limitedBy"] = a < d ? "ar" : "decoder",
                // With both stages on one device (the CPU here) they share its cores: each image costs both stages' time.
                ["sharedDeviceImagesPerSecond"] = Math.Round(1 / (1 / a + 1 / d), 3),
                ["ar"] = Stage("AR", _ar),
                ["decoder"] = Stage("decoder", _decoder),
            };
        }
    }

    /// <summary>
    /// One concurrency level: a server with batching and one without, both warmed up, each given the same requests
    /// in two halves in the order on, off, off, on, so that drift in the machine's speed (other work on a shared
    /// machine) falls on both alike.
    /// </summary>
    private static (JsonObject On, JsonObject Off) LoadRow(ImageGenerator generator, BatchingOptions on, BatchingOptions off, int requests, int concurrency, int? steps, TextWriter? log)
    {
        using var withBatching = new Target(generator, on, concurrency);
        using var without = new Target(generator, off, concurrency);
        int half = requests / 2;
        foreach (var (target, from, to) in new[] { (withBatching, 0, half), (without, 0, half), (without, half, requests), (withBatching, half, requests) })
            target.Load(from, to, concurrency, steps);
        var results = (withBatching.Result("on", concurrency), without.Result("off", concurrency));
        foreach (var (label, r) in new[] { ("on", results.Item1), ("off", results.Item2) })
            log?.WriteLine($"concurrency {concurrency,2}, batching {label,-3}: {r["imagesPerSecond"]} images/s, p50 {r["p50Ms"]} ms, p95 {r["p95Ms"]} ms (mean AR batch {r["meanArBatch"]}, mean decoder batch {r["meanDecoderBatch"]})");
        return results;
    }

    /// <summary>A server on its own batching queue over the shared generator, and the latencies it served.</summary>
    private sealed class Target : IDisposable
    {
        private readonly BatchingGenerator _queue;
        private readonly TesseraServer _server;
        private readonly HttpClient _http;
        private readonly List<double> _latencies = new();
        private double _seconds;

        public Target(ImageGenerator generator, BatchingOptions batching, int concurrency)
        {
            _queue = new BatchingGenerator(generator, batching);
            _server = TesseraServer.StartAsync(_queue, new ServerOptions { Port = 0, Batching = batching, MaxN = 1, RequestTimeout = TimeSpan.FromMinutes(30) }).GetAwaiter().GetResult();
            _http = new HttpClient { BaseAddress = _server.BaseAddress, Timeout = TimeSpan.FromMinutes(30) };
            // Warm-up through HTTP (JIT of the server paths, first allocations at each batch shape) before timing.
            Task.WaitAll(Enumerable.Range(0, Math.Min(concurrency, 4)).Select(i => _http.PostAsync("v1/images/generations",
                new StringContent(new JsonObject { ["prompt"] = "the word \"WARM\" in red on a white background", ["seed"] = 1000 + i, ["steps"] = 2 }.ToJsonString(), Encoding.UTF8, "application/json"))).ToArray());
        }

        /// <summary>Requests [from, to) with <paramref name="concurrency"/> clients, each sending its next request when the last one is answered.</summary>
        public void Load(int from, int to, int concurrency, int? steps)
        {
            if (to <= from) return;
            var latencies = new double[to - from];
            int next = from - 1, failed = 0;
            var wall = Stopwatch.StartNew();
            var workers = Enumerable.Range(0, concurrency).Select(_ => Task.Run(async () =>
            {
                int i;
                while ((i = Interlocked.Increment(ref next)) < to)
                {
                    var body = new JsonObject { ["prompt"] = $"the word \"{Words[i % Words.Length]}\" in red on a yellow background", ["seed"] = i };
                    if (steps is { } s) body["steps"] = s;
                    var watch = Stopwatch.StartNew();
                    using var response = await _http.PostAsync("v1/images/generations", new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"));
                    latencies[i - from] = watch.Elapsed.TotalMilliseconds;
                    if (response.StatusCode != HttpStatusCode.OK) Interlocked.Increment(ref failed);
                }
            })).ToArray();
            Task.WaitAll(workers);
            _seconds += wall.Elapsed.TotalSeconds;
            if (failed > 0) throw new InvalidOperationException($"{failed} of {to - from} requests failed during the load (concurrency {concurrency}).");
            _latencies.AddRange(latencies);
        }

        public JsonObject Result(string label, int concurrency)
        {
            var sorted = _latencies.Order().ToArray();
            double P(double q) => sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(q * sorted.Length) - 1)];
            var m = _queue.Metrics;
            return new JsonObject
            {
                ["imagesPerSecond"] = Math.Round(sorted.Length / _seconds, 3),
                ["p50Ms"] = Math.Round(P(0.50), 1),
                ["p95Ms"] = Math.Round(P(0.95), 1),
                ["largestArBatch"] = m.LargestArBatch,
                ["largestDecoderBatch"] = m.LargestDecoderBatch,
                // Over the whole row, the warm-up requests included.
                ["meanArBatch"] = Math.Round(m.MeanArBatch, 2),
                ["meanDecoderBatch"] = Math.Round(m.MeanDecoderBatch, 2),
                ["arHostBytesPerStep"] = new JsonObject
                {
                    ["kvCache"] = m.ArHostBytesPerStep(kvCache: true),
                    ["other"] = Math.Round(m.ArHostBytesPerStep(kvCache: false) ?? 0),
                },
            };
        }

        public void Dispose()
        {
            _http.Dispose();
            _server.DisposeAsync().AsTask().GetAwaiter().GetResult();
            _queue.Dispose();
        }
    }

    private static readonly string[] Words = ["MOON", "CAT", "TREE", "SHIP", "BIRD", "LAMP", "ROSE", "FISH", "KING", "RAIN", "STAR", "BELL", "WOLF", "CAKE", "DOOR", "HILL"];

    public static string Table(JsonObject r)
    {
        var w = new StringBuilder();
        w.AppendLine($"tessera bench serve: {r["requests"]} requests per row over loopback HTTP, model {r["model"]} on {r["device"]} ({r["cores"]} cores), {r["steps"]} decoder steps, max batch {r["maxBatch"]}");
        var c = r["ceiling"]!;
        w.AppendLine($"ceiling (in process, same run): {c["imagesPerSecond"]} images/s = the {c["limitedBy"]} stage at its best batch " +
            $"(AR {c["ar"]!["imagesPerSecond"]} at batch {c["ar"]!["bestBatch"]}, decoder {c["decoder"]!["imagesPerSecond"]} at batch {c["decoder"]!["bestBatch"]}); " +
            $"{c["sharedDeviceImagesPerSecond"]} if the two stages share one device's cores");
        w.AppendLine($"{"concurrency",11} | {"batching: img/s",15} {"p50 ms",9} {"p95 ms",9} {"of ceiling",10} | {"no batching: img/s",18} {"p50 ms",9} {"p95 ms",9} {"of ceiling",10} | {"throughput x",12} {"p50 x",6}");
        foreach (var row in r["rows"]!.AsArray())
        {
            var on = row!["batching"]!; var off = row["noBatching"]!;
            w.AppendLine($"{row["concurrency"],11} | {on["imagesPerSecond"],15} {on["p50Ms"],9} {on["p95Ms"],9} {row["ofCeiling"],10} | {off["imagesPerSecond"],18} {off["p50Ms"],9} {off["p95Ms"],9} {row["noBatchingOfCeiling"],10} | {row["throughputRatio"],12} {row["p50Ratio"],6}");
        }
        w.Append("no batching = the same server with one request per stage at a time (the AR and decoder stages still overlap); " +
            "each server gets the requests in two halves, in the order on, off, off, on; of ceiling = images/s / the ceiling.");
        return w.ToString();
    }
}
