using System.Diagnostics;
using System.Text.Json.Nodes;
using Tessera.Engine;
using Tessera.Pipeline;
using Tessera.Pipeline.Batching;
using Tessera.Server;

namespace Tessera.Cli.Bench;

/// <summary>
/// <c>tessera bench instrumentation</c>: what the libraries used for progress and metrics cost where it matters, in
/// one process, against not having them at all (a stricter baseline than the hand-written code they replaced).
/// <list type="bullet">
/// <item>Progress: <c>tessera generate</c>'s Spectre.Console bars, drawn live (as on a terminal) into a discarding
/// writer, vs no progress receiver; per generation.</item>
/// <item>Metrics: a request through the batching queue with prometheus-net's meter adapter listening to its
/// System.Diagnostics.Metrics instruments and a <c>/metrics</c> scrape after every request, vs the same queue with
/// nothing listening; per request. The scrape's own time is reported too.</item>
/// <item>A/A: the bare path against itself, the run's noise floor.</item>
/// </list>
/// Paths alternate within each round, order rotating; each figure is the median over rounds of per-round medians.
/// </summary>
public static class InstrumentationBenchmark
{
    private const string Prompt = "the word \"MOON\" in red on a yellow background";

    public static JsonObject Run(EngineOptions options, ModelPackage package, int rounds, int perRound, int? steps, TextWriter? log)
    {
        using var engine = new TesseraEngine(options);
        using var generator = new ImageGenerator(engine, package, options.DeviceFor("ar"), options.DeviceFor("decoder"));
        var request = new GenerationRequest(Prompt) { Steps = steps };
        generator.Generate(request); // warm-up: compile, caches

        using var quiet = new BatchingGenerator(generator, BatchingOptions.Off);
        using var listened = new BatchingGenerator(generator, BatchingOptions.Off);
        using var exporter = new PrometheusMetrics(listened.Metrics);
        var scrapes = new List<double>();

        var paths = new (string Name, Func<double> Run)[]
        {
            ("bare", () => Time(() => generator.Generate(request))),
            ("bare again", () => Time(() => generator.Generate(request))),
            ("spectre bars", () => Time(() =>
            {
                using var display = new ConsoleProgress(interactive: true, output: TextWriter.Null);
                generator.Generate(request, new StageBars(display));
            })),
            ("queue", () => Time(() => quiet.GenerateAsync(request).GetAwaiter().GetResult())),
            ("queue + prometheus-net", () => Time(() =>
            {
                listened.GenerateAsync(request).GetAwaiter().GetResult();
                long t0 = Stopwatch.GetTimestamp();
                exporter.WriteAsync(Stream.Null).GetAwaiter().GetResult();
                lock (scrapes) scrapes.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
            })),
        };
        foreach (var p in paths) p.Run(); // warm-up of each path (JIT, the display's first frame, the adapter's first collection)
        scrapes.Clear();

        var perPath = paths.ToDictionary(p => p.Name, _ => new List<double>());
        for (int r = 0; r < rounds; r++)
        {
            log?.WriteLine($"round {r + 1}/{rounds}");
            var samples = paths.ToDictionary(p => p.Name, _ => new List<double>());
            for (int i = 0; i < perRound; i++)
                for (int k = 0; k < paths.Length; k++)
                {
                    var (name, run) = paths[(k + r + i) % paths.Length];
                    samples[name].Add(run());
                }
            foreach (var (name, list) in samples) perPath[name].Add(BenchStats.Median(list));
        }
        double Ms(string name) => Math.Round(BenchStats.Median(perPath[name]), 2);
        var scrapeMs = BenchStats.Median(scrapes);
        var metricsText = exporter.ToTextAsync().GetAwaiter().GetResult();
        return new JsonObject
        {
            ["benchmark"] = "instrumentation",
            ["model"] = package.Manifest.Name,
            ["device"] = generator.ArDevice.ToString(),
            ["rounds"] = rounds,
            ["runsPerRound"] = perRound,
            ["bareMs"] = Ms("bare"),
            ["bareAgainMs"] = Ms("bare again"),
            ["noiseRatio"] = Math.Round(Ms("bare again") / Ms("bare"), 3),
            ["spectreBarsMs"] = Ms("spectre bars"),
            ["progressRatio"] = Math.Round(Ms("spectre bars") / Ms("bare"), 3),
            ["queueMs"] = Ms("queue"),
            ["queueWithPrometheusMs"] = Ms("queue + prometheus-net"),
            ["metricsRatio"] = Math.Round(Ms("queue + prometheus-net") / Ms("queue"), 3),
            ["scrapeMs"] = Math.Round(scrapeMs, 3),
            ["scrapeBytes"] = System.Text.Encoding.UTF8.GetByteCount(metricsText),
            ["scrapeShareOfRequest"] = Math.Round(scrapeMs / Ms("queue"), 4),
        };
    }

    private static double Time(Action run)
    {
        long t0 = Stopwatch.GetTimestamp();
        run();
        return Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
    }

    public static string Table(JsonObject r) =>
        $"model {r["model"]} on {r["device"]}; median of {r["rounds"]} rounds x {r["runsPerRound"]} runs per path, paths alternating\n" +
        $"{"comparison",-52}{"without",10}{"with",10}{"ratio",8}\n" +
        $"{"A/A noise floor: generate ms, bare vs bare",-52}{r["bareMs"],10}{r["bareAgainMs"],10}{r["noiseRatio"],8}\n" +
        $"{"progress: generate ms, none vs Spectre.Console bars",-52}{r["bareMs"],10}{r["spectreBarsMs"],10}{r["progressRatio"],8}\n" +
        $"{"metrics: request ms, none vs prometheus-net + scrape",-52}{r["queueMs"],10}{r["queueWithPrometheusMs"],10}{r["metricsRatio"],8}\n" +
        $"one /metrics scrape: {r["scrapeMs"]} ms for {r["scrapeBytes"]} bytes ({(double)r["scrapeShareOfRequest"]! * 100:F2}% of a request)";
}
