using System.Diagnostics;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Tessera.Pipeline;
using Tessera.Pipeline.Batching;

namespace Tessera.Server;

/// <summary>
/// The HTTP images API: <c>POST /v1/images/generations</c>, <c>POST /v1/images/edits</c>, <c>GET /v1/models</c>,
/// <c>GET /health</c>, <c>GET /metrics</c> and a web page at <c>/</c>, over one <see cref="BatchingGenerator"/>.
/// </summary>
public sealed class TesseraServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly IImageQueue _batching;
    private readonly ServerOptions _options;
    private readonly TextWriter _log;
    private readonly PrometheusMetrics _metrics;
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = false, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private TesseraServer(WebApplication app, IImageQueue batching, ServerOptions options, TextWriter log)
    {
        _app = app; _batching = batching; _options = options; _log = log;
        _metrics = new PrometheusMetrics(batching.Metrics);
    }

    /// <summary>The address clients use, e.g. http://127.0.0.1:8080 (the real port when 0 was asked for).</summary>
    public Uri BaseAddress { get; private set; } = new("http://127.0.0.1/");

    public BatchingGenerator Batching => _batching as BatchingGenerator ?? throw new InvalidOperationException("This server generates through a cluster; use Queue.");
    public IImageQueue Queue => _batching;

    /// <summary>Builds and starts the server; returns once it is listening.</summary>
    public static Task<TesseraServer> StartAsync(IImageQueue batching, ServerOptions options, TextWriter? log = null) =>
        StartAsync(batching, options, log, configure: null);

    /// <summary>As above; <paramref name="configure"/> changes the host before it is built (tests swap Kestrel for an in-memory TestServer).</summary>
    internal static async Task<TesseraServer> StartAsync(IImageQueue batching, ServerOptions options, TextWriter? log, Action<WebApplicationBuilder>? configure)
    {
        if (!IPAddress.TryParse(options.Host, out var address) && options.Host != "localhost")
            throw new ArgumentException($"--host '{options.Host}' is not an IP address; use 127.0.0.1 (default), 0.0.0.0 for every interface, or a specific address.");
        if (options.Port is < 0 or > 65535) throw new ArgumentException($"--port {options.Port} is not a port (0-65535; 0 picks a free one).");
        if (options.MaxN < 1 || options.MaxN > GenerationLimits.MaxImages)
            throw new ArgumentException($"--max-n is {options.MaxN}; it must be from 1 to {GenerationLimits.MaxImages}.");
        if (options.MaxN > batching.Options.QueueCapacity)
            throw new ArgumentException($"--queue {batching.Options.QueueCapacity} is smaller than --max-n {options.MaxN}, so a request for {options.MaxN} images could never be queued; raise --queue or lower --max-n.");
        foreach (var h in options.AllowedHosts)
            if (string.IsNullOrWhiteSpace(h) || h.Contains('/') || h.Contains(' '))
                throw new ArgumentException($"--allowed-host '{h}' is not a host name; give a name such as images.example.com, or * for any.");
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = options.MaxBodyBytes;
            k.Limits.RequestHeadersTimeout = TimeSpan.FromSeconds(Math.Min(30, options.RequestTimeout.TotalSeconds));
            if (address is null) k.ListenLocalhost(options.Port);
            else k.Listen(address, options.Port);
        });
        configure?.Invoke(builder);
        WebApplication app;
        try { app = builder.Build(); }
        catch (Exception e) when (e is not ArgumentException) { throw new IOException($"The server could not be set up on {options.Host}:{options.Port}: {e.Message}", e); }
        var server = new TesseraServer(app, batching, options, log ?? TextWriter.Null);
        server.Map();
        try { await app.StartAsync(); }
        catch (Exception e) when (e is System.Net.Sockets.SocketException or IOException or InvalidOperationException)
        {
            await app.DisposeAsync();
            var why = e.InnerException?.Message ?? e.Message;
            if (why.Contains("address already in use", StringComparison.OrdinalIgnoreCase))
                throw new IOException($"Port {options.Port} on {options.Host} is in use; pass --port with a free port (or 0 for any).", e);
            throw new IOException($"Cannot listen on {options.Host}:{options.Port}: {why}. Use an address of this machine (127.0.0.1 by default, 0.0.0.0 for every interface).", e);
        }
        // An in-memory server has no address; its clients come from the server itself.
        var bound = app.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault();
        server.BaseAddress = bound is null ? new Uri("http://localhost/") : new Uri(bound.Replace("[::]", "127.0.0.1").Replace("0.0.0.0", "127.0.0.1") + "/");
        return server;
    }

    /// <summary>The app's services (tests reach an in-memory server's client through them).</summary>
    internal IServiceProvider Services => _app.Services;

    /// <summary>Runs until <paramref name="stop"/> fires.</summary>
    public Task WaitAsync(CancellationToken stop) => Microsoft.Extensions.Hosting.HostingAbstractionsHostExtensions.WaitForShutdownAsync(_app, stop);

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        _metrics.Dispose();
    }

    private ModelPackage Package => _batching.Package;

    private void Map()
    {
        _app.Use(async (ctx, next) =>
        {
            var watch = Stopwatch.StartNew();
            if (!HostAllowed(ctx.Request.Host.Host))
            {
                await Write(ctx, new ApiError(400, $"Host '{ctx.Request.Host.Host}' is not served here (a guard against DNS rebinding); " +
                    "use 127.0.0.1 or localhost, or start tessera serve with --allowed-host <name> for this name.", type: "invalid_request_error", code: "host_not_allowed"));
            }
            else if (_options.ApiKey is { } key && ctx.Request.Path.StartsWithSegments("/v1") && !KeyMatches(ctx.Request.Headers.Authorization.ToString(), key))
            {
                await Write(ctx, new ApiError(401, "Missing or wrong API key: send the header 'Authorization: Bearer <key>'.", type: "authentication_error"));
            }
            else
            {
                await next(ctx);
                // Routing answers unknown paths and methods with an empty body; give them the documented JSON error.
                if (!ctx.Response.HasStarted && ctx.Response.StatusCode is 404 or 405 && ctx.Response.ContentType is null)
                {
                    var status = ctx.Response.StatusCode;
                    await Write(ctx, status == 404
                        ? new ApiError(404, $"No endpoint {ctx.Request.Path}. Endpoints: POST /v1/images/generations, POST /v1/images/edits, GET /v1/models, GET /health, GET /metrics, GET /.", type: "not_found_error")
                        : new ApiError(405, $"{ctx.Request.Method} is not allowed on {ctx.Request.Path}{(ctx.Response.Headers.Allow.Count > 0 ? $"; use {ctx.Response.Headers.Allow}" : "")}.", type: "invalid_request_error", code: "method_not_allowed"));
                }
            }
            _log.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} {ctx.Request.Method} {ctx.Request.Path} {ctx.Response.StatusCode} {watch.Elapsed.TotalMilliseconds:F0} ms{(ctx.RequestAborted.IsCancellationRequested ? " (client disconnected)" : "")}");
        });
        _app.MapGet("/", () => Results.Content(IndexHtml.Value, "text/html; charset=utf-8"));
        _app.MapGet("/health", () => Results.Json<JsonObject>(new JsonObject
        {
            ["status"] = "ok",
            ["model"] = Package.Manifest.Name,
            ["queue"] = _batching.Metrics.QueueDepth,
            ["devices"] = new JsonObject { ["ar"] = _batching.ArPlacement, ["decoder"] = _batching.DecoderPlacement },
            ["batching"] = new JsonObject { ["maxArBatch"] = _batching.Options.MaxArBatch, ["maxDecoderBatch"] = _batching.Options.MaxDecoderBatch, ["queueCapacity"] = _batching.Options.QueueCapacity },
        }, Indented));
        _app.MapGet("/metrics", async (HttpContext ctx) =>
        {
            ctx.Response.ContentType = PrometheusMetrics.ContentType;
            await _metrics.WriteAsync(ctx.Response.Body, ctx.RequestAborted);
        });
        _app.MapGet("/v1/models", () => Results.Json<JsonObject>(new JsonObject
        {
            ["object"] = "list",
            ["data"] = new JsonArray(new JsonObject
            {
                ["id"] = Package.Manifest.Name, ["object"] = "model", ["owned_by"] = "tessera",
                ["created"] = new DateTimeOffset(File.GetLastWriteTimeUtc(Path.Combine(Package.Directory, ModelPackage.ManifestFile))).ToUnixTimeSeconds(),
                ["size"] = $"{Package.Manifest.Decoder.ImageSize}x{Package.Manifest.Decoder.ImageSize}",
            }),
        }, Indented));
        _app.MapPost("/v1/images/generations", ctx => Handle(ctx, edit: false));
        _app.MapPost("/v1/images/edits", ctx => Handle(ctx, edit: true));
    }

    private async Task Handle(HttpContext ctx, bool edit)
    {
        using var timeout = new CancellationTokenSource(_options.RequestTimeout);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted, timeout.Token);
        bool parsed = false;
        try
        {
            var request = await Parse(ctx, edit, linked.Token); // the timeout covers reading the body too
            parsed = true;
            if (request.N > _batching.Options.QueueCapacity)
                throw ApiError.BadRequest($"'n' is {request.N} but the server queues at most {_batching.Options.QueueCapacity} images; ask for fewer.", "n");
            var channel = request.Stream ? Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = true }) : null;
            var tasks = new List<Task<GenerationResult>>();
            try
            {
                int index = 0;
                foreach (var r in request.Expand())
                {
                    int i = index++;
                    var progress = channel is null ? null : new ChannelProgress(channel.Writer, i, request.N);
                    tasks.Add(_batching.GenerateAsync(r, progress, linked.Token));
                }
            }
            catch (QueueFullException)
            {
                linked.Cancel(); // the images already queued for this call are withdrawn
                throw;
            }

            if (channel is not null)
            {
                ctx.Response.ContentType = "text/event-stream";
                ctx.Response.Headers.CacheControl = "no-cache";
                _ = Task.WhenAll(tasks).ContinueWith(_ => channel.Writer.TryComplete(), TaskScheduler.Default);
                try
                {
                    await foreach (var line in channel.Reader.ReadAllAsync(linked.Token))
                    {
                        await ctx.Response.WriteAsync(line, linked.Token);
                        await ctx.Response.Body.FlushAsync(linked.Token);
                    }
                    var results = await Task.WhenAll(tasks);
                    await ctx.Response.WriteAsync($"event: result\ndata: {ResultJson(request, results).ToJsonString(Indented)}\n\n", linked.Token);
                    _batching.Metrics.RecordRequest("completed");
                }
                catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested) { _batching.Metrics.RecordRequest("cancelled"); }
                catch (Exception e) when (!ctx.RequestAborted.IsCancellationRequested)
                {
                    var error = Describe(e, timeout.IsCancellationRequested, parsed);
                    _batching.Metrics.RecordRequest(Outcome(error));
                    await ctx.Response.WriteAsync($"event: error\ndata: {error.ToJson().ToJsonString(Indented)}\n\n");
                }
                return;
            }

            GenerationResult[] done;
            try
            {
                done = await Task.WhenAll(tasks);
            }
            catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested)
            {
                _batching.Metrics.RecordRequest("cancelled");
                return; // the client went away; its work was cancelled between steps
            }
            await Write(ctx, 200, ResultJson(request, done));
            _batching.Metrics.RecordRequest("completed");
        }
        catch (Exception e) when (!ctx.RequestAborted.IsCancellationRequested)
        {
            var error = e is QueueFullException full ? new ApiError(429, full.Message, type: "rate_limit_error", code: "queue_full") : Describe(e, timeout.IsCancellationRequested, parsed);
            _batching.Metrics.RecordRequest(Outcome(error));
            if (e is QueueFullException q) ctx.Response.Headers.RetryAfter = ((int)Math.Ceiling(q.RetryAfter.TotalSeconds)).ToString();
            if (!ctx.Response.HasStarted) await Write(ctx, error);
        }
        catch (OperationCanceledException) { _batching.Metrics.RecordRequest("cancelled"); }
    }

    private static string Outcome(ApiError error) => error.Status switch
    {
        429 => "rejected", 504 or 408 => "timeout", >= 500 => "failed", _ => "invalid",
    };

    /// <summary>Loopback names and IP literals always; other names only when the operator allowed them.</summary>
    private bool HostAllowed(string host)
    {
        if (host.Length == 0) return false;
        if (_options.AllowedHosts.Contains("*")) return true;
        var bare = host.Trim('[', ']');
        if (IPAddress.TryParse(bare, out _)) return true; // a rebinding page can only ever send its own name, never an IP literal
        if (bare.Equals("localhost", StringComparison.OrdinalIgnoreCase) || bare.EndsWith(".localhost", StringComparison.OrdinalIgnoreCase)) return true;
        return _options.AllowedHosts.Any(h => h.Equals(bare, StringComparison.OrdinalIgnoreCase)
            || (h.StartsWith("*.", StringComparison.Ordinal) && bare.EndsWith(h[1..], StringComparison.OrdinalIgnoreCase)));
    }

    /// <summary>"Bearer &lt;key&gt;" with the scheme in any case (RFC 9110), the key compared in constant time.</summary>
    private static bool KeyMatches(string header, string key)
    {
        var space = header.IndexOf(' ');
        if (space < 0 || !header[..space].Equals("Bearer", StringComparison.OrdinalIgnoreCase)) return false;
        // Hash both sides first so the comparison takes the same time whatever the lengths.
        var given = System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(header[(space + 1)..].Trim()));
        var expected = System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(key));
        return System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(given, expected);
    }

    private ApiError Describe(Exception e, bool timedOut, bool parsed = true) => e switch
    {
        ApiError a => a,
        OperationCanceledException when timedOut && !parsed => new ApiError(408, $"The request body did not arrive within {_options.RequestTimeout.TotalSeconds:F0} s; send it faster.", type: "timeout"),
        OperationCanceledException when timedOut => new ApiError(504, $"The request did not finish within {_options.RequestTimeout.TotalSeconds:F0} s and was cancelled. Ask for fewer images or steps, or retry when the server is less busy.", type: "timeout"),
        StageUnavailableException s => new ApiError(503, s.Message, param: s.Stage, type: "server_error", code: "stage_unavailable"),
        Tessera.Data.Prompting.PromptException p => ApiError.BadRequest(p.Message, "prompt"),
        GenerationParameterException g => ApiError.BadRequest(g.Message, g.Parameter),
        BadHttpRequestException b => new ApiError(b.StatusCode, b.Message),
        _ => new ApiError(500, $"Generation failed: {e.Message}", type: "server_error"),
    };

    private async Task<ImageRequest> Parse(HttpContext ctx, bool edit, CancellationToken cancel)
    {
        if (edit && ctx.Request.HasFormContentType)
        {
            if (!ctx.Request.ContentType!.Contains("multipart/form-data", StringComparison.OrdinalIgnoreCase))
                throw new ApiError(415, $"Send edits as multipart/form-data or application/json (got '{ctx.Request.ContentType}').");
            IFormCollection form;
            try { form = await ctx.Request.ReadFormAsync(cancel); }
            catch (Exception e) when (e is InvalidDataException or IOException or FormatException or InvalidOperationException && e is not BadHttpRequestException)
            {
                // Boundary missing or mismatched, a truncated part, a header too long: the client's body is malformed.
                throw ApiError.BadRequest($"The multipart body is malformed: {e.Message} Send multipart/form-data with a boundary, an 'image' file part and text fields.");
            }
            byte[]? image = null;
            if (form.Files.Count > 0)
            {
                var files = form.Files.Where(f => f.Name == "image").ToList();
                if (form.Files.FirstOrDefault(f => f.Name != "image") is { } other)
                    throw ApiError.BadRequest($"Unknown file field '{other.Name}'; the only file field is 'image'.", other.Name);
                if (files.Count > 1) throw ApiError.BadRequest($"Field 'image' is given {files.Count} times; send one image.", "image");
                using var ms = new MemoryStream();
                await files[0].CopyToAsync(ms, cancel);
                image = ms.ToArray();
            }
            return ImageRequest.FromForm(new FormAdapter(form), image, Package, _options);
        }
        if (ctx.Request.ContentType is not { } type || !type.StartsWith("application/json", StringComparison.OrdinalIgnoreCase))
            throw new ApiError(415, $"Send the request as application/json{(edit ? " or multipart/form-data" : "")} (got '{ctx.Request.ContentType ?? "no content type"}').");
        JsonDocument doc;
        try
        {
            doc = await JsonDocument.ParseAsync(ctx.Request.Body, default, cancel);
        }
        catch (JsonException e)
        {
            throw ApiError.BadRequest($"The body is not valid JSON: {e.Message}");
        }
        using (doc) return ImageRequest.FromJson(doc.RootElement, Package, _options, edit);
    }

    private JsonObject ResultJson(ImageRequest request, GenerationResult[] results) => new()
    {
        ["created"] = DateTimeOffset.UtcNow.ToUnixTimeSeconds(),
        ["model"] = Package.Manifest.Name,
        ["data"] = new JsonArray(results.Select((r, i) => (JsonNode)new JsonObject
        {
            ["b64_json"] = Convert.ToBase64String(r.Png),
            ["seed"] = request.Seed + (ulong)i,
            ["preview_tokens"] = new JsonArray(r.PreviewTokens.Select(t => (JsonNode)t).ToArray()),
            ["target_tokens"] = new JsonArray(r.TargetTokens.Select(t => (JsonNode)t).ToArray()),
            ["timings_ms"] = new JsonObject
            {
                ["ar"] = Math.Round((r.Timings.ArPrefill + r.Timings.ArDecode).TotalMilliseconds, 1),
                ["decoder"] = Math.Round(r.Timings.Decoder.TotalMilliseconds, 1),
            },
        }).ToArray()),
        ["warnings"] = new JsonArray(results.SelectMany(r => r.Warnings).Distinct().Select(w => (JsonNode)w).ToArray()),
    };

    private static Task Write(HttpContext ctx, ApiError error) => Write(ctx, error.Status, error.ToJson());

    private static async Task Write(HttpContext ctx, int status, JsonObject body)
    {
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "application/json; charset=utf-8";
        await ctx.Response.WriteAsync(body.ToJsonString(Indented));
    }

    private static readonly Lazy<string> IndexHtml = new(() =>
    {
        using var s = typeof(TesseraServer).Assembly.GetManifestResourceStream("Tessera.Server.index.html")!;
        return new StreamReader(s).ReadToEnd();
    });

    /// <summary>Progress as server-sent events, written in order from the stage threads.</summary>
    private sealed class ChannelProgress(ChannelWriter<string> writer, int index, int n) : IProgress<GenerationProgress>
    {
        public void Report(GenerationProgress p) =>
            writer.TryWrite($"event: progress\ndata: {{\"index\":{index},\"n\":{n},\"stage\":\"{p.Stage}\",\"done\":{p.Done},\"total\":{p.Total}}}\n\n");
    }

    private sealed class FormAdapter(IFormCollection form) : IFormCollectionLike
    {
        public string? Get(string name) => form.TryGetValue(name, out var v) && v.Count > 0 ? v[0] : null;
        public IEnumerable<string> Names => form.Keys.Concat(form.Files.Select(f => f.Name)).Distinct(StringComparer.Ordinal);
        public int Count(string name) => (form.TryGetValue(name, out var v) ? v.Count : 0) + form.Files.Count(f => f.Name == name);
    }
}
