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
    /// <param name="maxBatch">The batching server's limit for both stages; null: each stage's measured best (auto).</param>
    public static JsonObject Run(EngineOptions options, ModelPackage package, int requests, int[] concurrencies, int? maxBatch, int? steps, TextWriter? log)
    {
        using var engine = new TesseraEngine(options);
        using var generator = new ImageGenerator(engine, package, options.DeviceFor("ar"), options.DeviceFor("decoder"));
        generator.Generate(new GenerationRequest("the word \"WARM\" in red on a white background") { Steps = steps }); // warm-up: compile, caches
        int limit = maxBatch ?? 8;
        var batching = new BatchingOptions { MaxArBatch = limit, MaxDecoderBatch = limit, QueueCapacity = Math.Max(64, requests) };
        // Warm-up of the serving paths (HTTP, queue, batching at several sizes) until the JIT has optimised them, so
        // the first timed server does not pay for it.
        using (var warm = new Target(generator, batching, 4)) warm.Load(0, 48, 4, steps: 1);
        var probe = new StageThroughput(generator, limit, steps);
        probe.Measure(); // two passes before the load, two after: the best per batch size
        // --max-batch auto (null): each stage's limit is its best batch from this first measurement, as `tessera serve
        // --max-batch auto` chooses it.
        if (maxBatch is null) batching = probe.Tune(batching);
        log?.WriteLine($"batching server: AR batch up to {batching.MaxArBatch}, decoder batch up to {batching.MaxDecoderBatch}{(maxBatch is null ? probe.SeparateDevices ? " (auto, stages on separate devices: the slower stage at its measured best, the faster one at the smallest batch that keeps it 1.5x ahead)" : " (auto: each stage's measured best)" : "")}");
        var rows = new JsonArray();
        foreach (int c in concurrencies)
        {
            // At concurrency 1 both servers run the same code (nothing to batch), so the row also gets an A/A: a second
            // server without batching, whose ratio to the first is the noise floor the 1.0x is read against.
            var (on, off, again) = LoadRow(generator, batching, BatchingOptions.Off with { QueueCapacity = Math.Max(64, requests) }, requests, c, steps, log, aa: c == 1);
            var row = new JsonObject
            {
                ["concurrency"] = c,
                ["batching"] = on,
                ["noBatching"] = off,
                ["throughputRatio"] = Math.Round(on["imagesPerSecond"]!.GetValue<double>() / off["imagesPerSecond"]!.GetValue<double>(), 2),
                ["p50Ratio"] = Math.Round(off["p50Ms"]!.GetValue<double>() / on["p50Ms"]!.GetValue<double>(), 2),
            };
            if (again is not null)
            {
                row["noBatchingAgain"] = again;
                row["aaThroughputRatio"] = Math.Round(again["imagesPerSecond"]!.GetValue<double>() / off["imagesPerSecond"]!.GetValue<double>(), 2);
            }
            rows.Add(row);
        }
        probe.Measure();
        var ceiling = Ceiling(probe, log);
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
            ["maxBatch"] = maxBatch is null ? JsonValue.Create("auto") : JsonValue.Create(maxBatch.Value),
            ["arBatchLimit"] = batching.MaxArBatch,
            ["decoderBatchLimit"] = batching.MaxDecoderBatch,
            ["steps"] = steps ?? package.Manifest.Sampling.Steps,
            ["cores"] = Environment.ProcessorCount,
            ["ceiling"] = ceiling,
            ["rows"] = rows,
        };
    }

    /// <summary>
    /// The ceiling from a <see cref="StageThroughput"/> probe (measured before and after the load, best kept per size):
    /// the slower stage's best images/s, and the shared-device bound when both stages share one device's cores.
    /// </summary>
    private static JsonObject Ceiling(StageThroughput probe, TextWriter? log)
    {
        JsonObject Stage(string name, IReadOnlyList<double> rates)
        {
            var perBatch = new JsonObject();
            int bestK = 0;
            for (int k = 0; k < probe.Sizes.Count; k++)
            {
                perBatch[probe.Sizes[k].ToString(System.Globalization.CultureInfo.InvariantCulture)] = Math.Round(rates[k], 3);
                if (rates[k] > rates[bestK]) bestK = k;
            }
            log?.WriteLine($"ceiling: {name} alone {string.Join(", ", perBatch.Select(p => $"batch {p.Key} {p.Value} images/s"))}");
            return new JsonObject { ["imagesPerSecond"] = Math.Round(rates[bestK], 3), ["bestBatch"] = probe.Sizes[bestK], ["byBatch"] = perBatch };
        }

        double a = probe.Ar.Max(), d = probe.Decoder.Max();
        return new JsonObject
        {
            ["imagesPerSecond"] = Math.Round(Math.Min(a, d), 3),
            ["limitedBy"] = a < d ? "ar" : "decoder",
            // With both stages on one device (the CPU here) they share its cores: each image costs both stages' time.
            ["sharedDeviceImagesPerSecond"] = Math.Round(1 / (1 / a + 1 / d), 3),
            ["ar"] = Stage("AR", probe.Ar),
            ["decoder"] = Stage("decoder", probe.Decoder),
        };
    }

    /// <summary>
    /// One concurrency level: a server with batching and one without (at concurrency 1 a second one without: the A/A),
    /// each first given an untimed settling round at the row's settings, then the same requests in rounds whose order
    /// rotates, so that drift in the machine's speed falls on all alike.
    /// </summary>
    private static (JsonObject On, JsonObject Off, JsonObject? Again) LoadRow(ImageGenerator generator, BatchingOptions on, BatchingOptions off, int requests, int concurrency, int? steps, TextWriter? log, bool aa = false)
    {
        using var withBatching = new Target(generator, on, concurrency, "on");
        using var without = new Target(generator, off, concurrency, "off");
        using var again = aa ? new Target(generator, off, concurrency, "off again") : null;
        Target[] targets = again is null ? [withBatching, without] : [withBatching, without, again];
        // Settling round, untimed, right before the timed ones (after a wait until the process is quiet: new servers
        // leave background work behind, their request and service-resolution code being compiled). With two halves
        // in a fixed order, the first timed segment of a row read 15-35% below the rest whichever server held it, and
        // still 0.7-0.8 of the others after a quiet wait alone: that first segment is now this untimed round.
        var quiet = WaitUntilQuiet();
        int settle = Math.Max(8, 2 * concurrency);
        foreach (var t in targets) t.Load(requests, requests + settle, concurrency, steps, timed: false);
        log?.WriteLine($"concurrency {concurrency,2}: {quiet.TotalSeconds:F1} s until the process was quiet, then {settle} untimed requests per server");
        // Then the timed requests in rounds, each server one segment per round, the order rotating from round to round
        // (on, off; off, on; ... or on, off, again; off, again, on; again, on, off), every server in every place of a
        // round equally often, so drift in the machine's speed and whatever a place in the order costs fall on all
        // alike. At concurrency 1 the rounds are short (9 with the A/A server): there the servers differ by noise only;
        // at higher concurrency a segment must hold several full batches, so there are two rounds (on, off, off, on).
        int rounds = concurrency == 1 && requests >= 3 * targets.Length * 2 ? 3 * targets.Length : targets.Length;
        for (int round = 0; round < rounds; round++)
        {
            int from = requests * round / rounds, to = requests * (round + 1) / rounds;
            if (to <= from) continue; // fewer requests than rounds
            for (int k = 0; k < targets.Length; k++)
            {
                var target = targets[(round + k) % targets.Length];
                double seconds = target.Load(from, to, concurrency, steps);
                log?.WriteLine($"concurrency {concurrency,2}, round {round + 1}/{rounds}, {target.Label,-9} requests {from}-{to - 1}: {(to - from) / seconds:F3} images/s");
            }
        }
        var results = (withBatching.Result("on", concurrency), without.Result("off", concurrency), again?.Result("off again", concurrency));
        foreach (var (label, r) in new[] { ("on", results.Item1), ("off", results.Item2), ("off again", results.Item3) })
            if (r is not null)
                log?.WriteLine($"concurrency {concurrency,2}, batching {label,-9}: {r["imagesPerSecond"]} images/s, p50 {r["p50Ms"]} ms, p95 {r["p95Ms"]} ms (mean AR batch {r["meanArBatch"]}, mean decoder batch {r["meanDecoderBatch"]})");
        return results;
    }

    /// <summary>
    /// Waits (up to 15 s) until this process uses under a tenth of a core over 200 ms: the servers' background work
    /// (tiered JIT, DI's compiled resolvers, minimal API delegates) would otherwise land on whichever segment comes first.
    /// </summary>
    private static TimeSpan WaitUntilQuiet()
    {
        using var self = System.Diagnostics.Process.GetCurrentProcess();
        var waited = Stopwatch.StartNew();
        while (waited.Elapsed < TimeSpan.FromSeconds(15))
        {
            self.Refresh();
            var cpu = self.TotalProcessorTime;
            var wall = Stopwatch.StartNew();
            Thread.Sleep(200);
            self.Refresh();
            if ((self.TotalProcessorTime - cpu).TotalSeconds < 0.1 * wall.Elapsed.TotalSeconds) break;
        }
        return waited.Elapsed;
    }

    /// <summary>A server on its own batching queue over the shared generator, and the latencies it served.</summary>
    private sealed class Target : IDisposable
    {
        private readonly BatchingGenerator _queue;
        private readonly TesseraServer _server;
        private readonly HttpClient _http;
        private readonly List<double> _latencies = new();
        private double _seconds;

        public Target(ImageGenerator generator, BatchingOptions batching, int concurrency, string label = "warm-up")
        {
            Label = label;
            _queue = new BatchingGenerator(generator, batching);
            _server = TesseraServer.StartAsync(_queue, new ServerOptions { Port = 0, Batching = batching, MaxN = 1, RequestTimeout = TimeSpan.FromMinutes(30) }).GetAwaiter().GetResult();
            _http = new HttpClient { BaseAddress = _server.BaseAddress, Timeout = TimeSpan.FromMinutes(30) };
            // Warm-up through HTTP (JIT of the server paths, first allocations at each batch shape) before timing.
            Task.WaitAll(Enumerable.Range(0, Math.Min(concurrency, 4)).Select(i => _http.PostAsync("v1/images/generations",
                new StringContent(new JsonObject { ["prompt"] = "the word \"WARM\" in red on a white background", ["seed"] = 1000 + i, ["steps"] = 2 }.ToJsonString(), Encoding.UTF8, "application/json"))).ToArray());
        }

        public string Label { get; }

        /// <summary>Requests [from, to) with <paramref name="concurrency"/> clients, each sending its next request when the last one is answered; returns the seconds they took.</summary>
        public double Load(int from, int to, int concurrency, int? steps, bool timed = true)
        {
            if (to <= from) return 0;
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
            double seconds = wall.Elapsed.TotalSeconds;
            if (failed > 0) throw new InvalidOperationException($"{failed} of {to - from} requests failed during the load (concurrency {concurrency}).");
            if (!timed) return seconds;
            _seconds += seconds;
            _latencies.AddRange(latencies);
            return seconds;
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
        w.AppendLine($"tessera bench serve: {r["requests"]} requests per row over loopback HTTP, model {r["model"]} on {r["device"]} ({r["cores"]} cores), {r["steps"]} decoder steps, max batch {r["maxBatch"]} (AR {r["arBatchLimit"]}, decoder {r["decoderBatchLimit"]})");
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
        foreach (var row in r["rows"]!.AsArray().Where(x => x!["aaThroughputRatio"] is not null))
            w.AppendLine($"concurrency {row!["concurrency"]} A/A noise floor: no batching again {row["noBatchingAgain"]!["imagesPerSecond"]} img/s = {row["aaThroughputRatio"]}x the first no-batching server (read the throughput x of that row against it)");
        w.Append("no batching = the same server with one request per stage at a time (the AR and decoder stages still overlap); " +
            "each server gets an untimed settling round, then the same requests in rounds of rotating order, each server in each place equally often (9 rounds at concurrency 1, else 2: on, off, off, on); of ceiling = images/s / the ceiling.");
        return w.ToString();
    }
}
