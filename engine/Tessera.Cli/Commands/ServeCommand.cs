using System.CommandLine;
using Tessera.Engine;
using Tessera.Pipeline;
using Tessera.Pipeline.Batching;
using Tessera.Server;

namespace Tessera.Cli.Commands;

/// <summary><c>tessera serve</c>: the HTTP images API with dynamic batching.</summary>
public static class ServeCommand
{
    public static Command Create()
    {
        var model = new Option<DirectoryInfo?>("--model") { Description = "Model package (default: the shipped one)." };
        var device = new Option<string?>("--device") { Description = "Device for both stages (default: the config file's placement, else auto)." };
        var arDevice = new Option<string?>("--ar-device") { Description = "Device for the AR stage." };
        var decoderDevice = new Option<string?>("--decoder-device") { Description = "Device for the decoder stage." };
        var host = new Option<string>("--host") { Description = "Address to bind. Default 127.0.0.1 (this machine only); 0.0.0.0 listens on every interface.", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "Port (0 picks a free one).", DefaultValueFactory = _ => 8080 };
        var apiKey = new Option<string?>("--api-key") { Description = "Require 'Authorization: Bearer <key>' on /v1 (default: $TESSERA_API_KEY, else no key)." };
        var maxBatch = BatchLimit.Create("8", "Most requests per AR step and images per decoder step (default 8), or auto: each stage's limit is its best batch, measured at start (batch 1, 2, 4, 8 alone; the smallest within 5% of the best; with the stages on separate devices the faster stage only as large as keeps it 1.5x ahead of the slower).");
        var queue = new Option<int>("--queue") { Description = "Requests that may wait; more are answered 429 with Retry-After.", DefaultValueFactory = _ => 64 };
        var window = new Option<int>("--window-ms") { Description = "How long an idle stage waits for more requests to join its first step.", DefaultValueFactory = _ => 5 };
        var timeout = new Option<int>("--timeout") { Description = "Seconds before a request is cancelled and answered 504.", DefaultValueFactory = _ => 120 };
        var maxN = new Option<int>("--max-n") { Description = "Most images per request.", DefaultValueFactory = _ => 4 };
        var noBatching = new Option<bool>("--no-batching") { Description = "One request at a time per stage." };
        var allowedHosts = new Option<string[]>("--allowed-host")
        {
            Description = "A host name (Host header) to answer besides localhost and IP addresses, e.g. images.example.com or *.example.com; * allows any. Repeatable. Guards against DNS rebinding.",
        };
        var cluster = new Option<string?>("--cluster") { Description = "Serve as the front of a Tessera cluster (redis://host:port or localhost): AR and decoder run on 'tessera node' processes." };
        var cmd = new Command("serve", "Serve the images API (OpenAI-style /v1/images/generations and /edits, /v1/models, /health, /metrics) and a web page at /, batching concurrent requests.")
        {
            model, device, arDevice, decoderDevice, host, port, apiKey, maxBatch, queue, window, timeout, maxN, noBatching, allowedHosts, cluster,
        };
        cmd.SetAction((parse, cancel) => CliErrors.RunAsync(async () =>
        {
            try
            {
                int? limit = BatchLimit.Parse(parse.GetValue(maxBatch)!); // before anything loads
                var options = GlobalOptions.Build(parse);
                var package = ModelPackage.Open(parse.GetValue(model)?.FullName ?? ModelPackage.DefaultDirectory());
                if (parse.GetValue(cluster) is { } connection) return await ServeClusterCommand.RunAsync(parse, connection, package, queue, timeout, maxN, host, port, apiKey, allowedHosts, cancel);
                using var engine = new TesseraEngine(options);
                var d = parse.GetValue(device);
                using var generator = new ImageGenerator(engine, package,
                    parse.GetValue(arDevice) ?? d ?? options.DeviceFor("ar"), parse.GetValue(decoderDevice) ?? d ?? options.DeviceFor("decoder"));
                var batching = parse.GetValue(noBatching) ? BatchingOptions.Off with { QueueCapacity = parse.GetValue(queue) } : new BatchingOptions
                {
                    MaxArBatch = limit ?? 8, MaxDecoderBatch = limit ?? 8, QueueCapacity = parse.GetValue(queue),
                    Window = TimeSpan.FromMilliseconds(parse.GetValue(window)),
                };
                if (limit is null && !parse.GetValue(noBatching))
                {
                    Console.Error.WriteLine("--max-batch auto: measuring each stage alone at batch 1, 2, 4, 8 …");
                    var probe = new StageThroughput(generator, 8);
                    probe.Measure();
                    batching = probe.Tune(batching);
                    Console.Error.WriteLine($"--max-batch auto: AR up to {batching.MaxArBatch} (images/s by batch: {Rates(probe, probe.Ar)}), " +
                        $"decoder up to {batching.MaxDecoderBatch} ({Rates(probe, probe.Decoder)})");
                }
                if (parse.GetValue(timeout) is < 1 or > 86400) throw new ArgumentException($"--timeout is {parse.GetValue(timeout)}; it must be from 1 to 86400 seconds.");
                if (parse.GetValue(maxN) is < 1 or > GenerationLimits.MaxImages) throw new ArgumentException($"--max-n is {parse.GetValue(maxN)}; it must be from 1 to {GenerationLimits.MaxImages}.");
                if (parse.GetValue(maxN) > parse.GetValue(queue))
                    throw new ArgumentException($"--queue {parse.GetValue(queue)} is smaller than --max-n {parse.GetValue(maxN)}, so a request for {parse.GetValue(maxN)} images could never be queued; raise --queue or lower --max-n.");
                if (parse.GetValue(window) is < 0 or > 10_000) throw new ArgumentException($"--window-ms is {parse.GetValue(window)}; it must be from 0 to 10000.");
                using var generatorQueue = new BatchingGenerator(generator, batching);
                var serverOptions = new ServerOptions
                {
                    Host = parse.GetValue(host)!, Port = parse.GetValue(port), ApiKey = parse.GetValue(apiKey) ?? Environment.GetEnvironmentVariable("TESSERA_API_KEY"),
                    Batching = batching, RequestTimeout = TimeSpan.FromSeconds(parse.GetValue(timeout)), MaxN = parse.GetValue(maxN),
                    AllowedHosts = parse.GetValue(allowedHosts) ?? [],
                };
                await using var server = await TesseraServer.StartAsync(generatorQueue, serverOptions, Console.Error);
                Console.WriteLine($"tessera serve: model {package.Manifest.Name} on ar {generator.ArDevice}, decoder {generator.DecoderDevice}; " +
                    $"batching {(parse.GetValue(noBatching) ? "off" : batching.MaxArBatch == batching.MaxDecoderBatch ? $"up to {batching.MaxArBatch}" : $"up to {batching.MaxArBatch} (AR), {batching.MaxDecoderBatch} (decoder)")}, queue {batching.QueueCapacity}{(serverOptions.ApiKey is null ? "" : ", API key required")}");
                Console.WriteLine($"listening on {server.BaseAddress}");
                Console.Out.Flush();
                try { await Task.Delay(Timeout.Infinite, cancel); }
                catch (OperationCanceledException) { Console.Error.WriteLine("stopping"); }
                return 0;
            }
            catch (IOException e)
            {
                Console.Error.WriteLine($"error: {e.Message}");
                return 1;
            }
        }));
        return cmd;
    }

    private static string Rates(StageThroughput probe, IReadOnlyList<double> rates) =>
        string.Join(", ", probe.Sizes.Select((b, k) => string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{b}: {rates[k]:F1}")));
}
