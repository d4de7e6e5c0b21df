using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Tessera.Engine;
using Tessera.Pipeline;
using Tessera.Pipeline.Batching;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Tessera.Server;
using Tessera.Datasets;

namespace Tessera.Server.Tests;

/// <summary>
/// `tessera serve` in-process on the shipped default model: in memory (TestHost) unless the socket matters (a client
/// that disconnects), with a gate that holds a stage so that timeouts and full queues happen on cue, not on CPU speed.
/// </summary>
[TestClass]
public sealed class ServerTests
{
    private const string Prompt = "the word \"MOON\" in red on a yellow background";

    /// <summary>A server with its own engine, generator and batching; disposed in order.</summary>
    internal sealed class Running : IAsyncDisposable
    {
        private readonly TesseraEngine _engine;
        private readonly ImageGenerator _generator;
        public BatchingGenerator Batching { get; }
        /// <summary>Between the server and the batching generator when started gated; null otherwise.</summary>
        public StageGate? Gate { get; }
        public TesseraServer Server { get; private set; } = null!;
        public HttpClient Client { get; private set; } = null!;

        private Running(TesseraEngine engine, ImageGenerator generator, BatchingGenerator batching, StageGate? gate)
        {
            _engine = engine; _generator = generator; Batching = batching; Gate = gate;
        }

        /// <summary>On an in-memory TestServer: no socket, the same app.</summary>
        public static Task<Running> Start(ServerOptions? options = null, bool gated = false) => Start(options, gated, inMemory: true);

        /// <summary>On Kestrel on a free loopback port, for what needs a real connection (disconnects, a browser).</summary>
        public static Task<Running> StartOnSocket(ServerOptions? options = null, bool gated = false) => Start(options, gated, inMemory: false);

        private static async Task<Running> Start(ServerOptions? options, bool gated, bool inMemory)
        {
            options ??= new ServerOptions();
            var o = new EngineOptions { UseDefaultPluginDirectory = false, UseEnvironmentPluginPath = false, CacheDirectory = Path.Combine(Path.GetTempPath(), "tessera-tests", "server-cache") };
            o.PluginDirectories.Add(Path.Combine(AppContext.BaseDirectory, "fixtures", "cpu"));
            var engine = new TesseraEngine(o);
            var generator = new ImageGenerator(engine, ModelPackage.Open(ModelPackage.DefaultDirectory()), "cpu:0", "cpu:0");
            var batching = new BatchingGenerator(generator, options.Batching);
            var running = new Running(engine, generator, batching, gated ? new StageGate(batching) : null);
            IImageQueue queue = running.Gate is null ? batching : running.Gate;
            if (inMemory)
            {
                running.Server = await TesseraServer.StartAsync(queue, options with { Port = 0 }, log: null, configure: b => b.WebHost.UseTestServer());
                running.Client = ((TestServer)running.Server.Services.GetRequiredService<IServer>()).CreateClient();
            }
            else
            {
                running.Server = await TesseraServer.StartAsync(queue, options with { Port = 0 });
                running.Client = new HttpClient { BaseAddress = running.Server.BaseAddress };
            }
            running.Client.Timeout = TimeSpan.FromMinutes(3);
            return running;
        }

        public Task<HttpResponseMessage> Generate(string json, CancellationToken cancel = default) =>
            Client.PostAsync("v1/images/generations", new StringContent(json, Encoding.UTF8, "application/json"), cancel);

        public async ValueTask DisposeAsync()
        {
            Gate?.Open();
            Client.Dispose();
            await Server.DisposeAsync();
            Batching.Dispose();
            _generator.Dispose();
            _engine.Dispose();
        }
    }

    private static async Task<JsonElement> Json(HttpResponseMessage response) =>
        JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();

    private static async Task AssertStillServes(Running s)
    {
        var health = await s.Client.GetAsync("health");
        Assert.AreEqual(HttpStatusCode.OK, health.StatusCode);
        var ok = await s.Generate($"{{\"prompt\": {JsonSerializer.Serialize(Prompt)}, \"seed\": 1, \"steps\": 2}}");
        Assert.AreEqual(HttpStatusCode.OK, ok.StatusCode, await ok.Content.ReadAsStringAsync());
    }

    [TestMethod]
    public async Task GenerationsReturnsAPngPerImageWithItsSeedAndTheSameBytesAsTheCli()
    {
        await using var s = await Running.Start();
        var response = await s.Generate($"{{\"prompt\": {JsonSerializer.Serialize(Prompt)}, \"n\": 2, \"seed\": 7, \"response_format\": \"b64_json\", \"size\": \"64x64\"}}");
        Assert.AreEqual(HttpStatusCode.OK, response.StatusCode, await response.Content.ReadAsStringAsync());
        var body = await Json(response);
        var data = body.GetProperty("data").EnumerateArray().ToList();
        Assert.AreEqual(2, data.Count);
        Assert.AreEqual(7UL, data[0].GetProperty("seed").GetUInt64());
        Assert.AreEqual(8UL, data[1].GetProperty("seed").GetUInt64());
        var png = Convert.FromBase64String(data[0].GetProperty("b64_json").GetString()!);
        CollectionAssert.AreEqual(s.Batching.Generator.Generate(new GenerationRequest(Prompt) { Seed = 7 }).Png, png, "served bytes = generating alone");

        var models = await Json(await s.Client.GetAsync("v1/models"));
        Assert.AreEqual("tessera-tiny", models.GetProperty("data")[0].GetProperty("id").GetString());
        var metrics = await s.Client.GetStringAsync("metrics");
        StringAssert.Contains(metrics, "tessera_requests_total{outcome=\"completed\"} 1", "one request");
        StringAssert.Contains(metrics, "tessera_images_total{outcome=\"completed\"} 2", "of two images");
        StringAssert.Contains(metrics, "tessera_stage_latency_seconds_count{stage=\"decoder\"} 2");
        StringAssert.Contains(metrics, "tessera_ar_tokens_per_second");
        StringAssert.Contains(metrics, "tessera_ar_batch_size_bucket{le=\"1\"} ", "the batch-size histogram with its buckets");
        StringAssert.Contains(metrics, "tessera_queue_depth 0", "the queue is empty again");
        StringAssert.Matches(metrics, new System.Text.RegularExpressions.Regex("tessera_ar_host_bytes_per_step\\{kind=\"kv_cache\"\\} 0\n"), "the batched KV cache never crossed to the host");
        StringAssert.Matches(metrics, new System.Text.RegularExpressions.Regex("tessera_ar_host_bytes_per_step\\{kind=\"other\"\\} [1-9]"), "ids, mask and logits did");
    }

    [TestMethod]
    public async Task MalformedJsonWrongTypesAndOversizeNAre400WithAMessageAndTheServerKeepsServing()
    {
        await using var s = await Running.Start();
        foreach (var (body, param, text) in new[]
        {
            ("{\"prompt\": ", null, "not valid JSON"),
            ("[1, 2]", null, "must be a JSON object"),
            ("{\"prompt\": 5}", "prompt", "'prompt' must be a string, not the number 5"),
            ("{\"prompt\": \"the word \\\"SUN\\\"\", \"n\": \"two\"}", "n", "'n' must be a number"),
            ("{\"prompt\": \"the word \\\"SUN\\\"\", \"n\": 50}", "n", "'n' is 50; it must be from 1 to 4"),
            ("{\"prompt\": \"the word \\\"SUN\\\"\", \"size\": \"1024x1024\"}", "size", "64x64 images only"),
            ("{\"prompt\": \"the word \\\"SUN\\\"\", \"response_format\": \"url\"}", "response_format", "only b64_json"),
            ("{\"prompt\": \"the word \\\"SUN\\\"\", \"colour\": \"red\"}", "colour", "Unknown field 'colour'"),
            ("{\"prompt\": \"the word \\\"SUPERCALIFRAGILISTIC\\\"\"}", "prompt", "the limit is 16"),
            ("{\"prompt\": \"\"}", "prompt", "'prompt' is required"),
            ("{\"prompt\": \"the word \\\"SUN\\\"\", \"seed\": -1}", "seed", "'seed' must be a whole number"),
        })
        {
            var response = await s.Generate(body);
            Assert.AreEqual(HttpStatusCode.BadRequest, response.StatusCode, body);
            var error = (await Json(response)).GetProperty("error");
            StringAssert.Contains(error.GetProperty("message").GetString(), text, body);
            Assert.AreEqual(param, error.GetProperty("param").ValueKind == JsonValueKind.Null ? null : error.GetProperty("param").GetString(), body);
        }
        var wrongType = await s.Client.PostAsync("v1/images/generations", new StringContent("prompt=x", Encoding.UTF8, "text/plain"));
        Assert.AreEqual(HttpStatusCode.UnsupportedMediaType, wrongType.StatusCode);
        await AssertStillServes(s);
    }

    [TestMethod]
    public async Task AFullQueueAnswers429WithRetryAfterAndTheServerKeepsServing()
    {
        await using var s = await Running.Start(new ServerOptions { MaxN = 1, Batching = BatchingOptions.Off with { QueueCapacity = 1 } }, gated: true);
        var body = $"{{\"prompt\": {JsonSerializer.Serialize(Prompt)}, \"steps\": 2}}";
        // One request held in the AR stage and one in the only queue slot: the queue is full until the gate opens.
        var running = s.Generate(body);
        await s.Gate!.WaitUntilHeld();
        var queued = s.Generate(body);
        await WaitFor(() => s.Batching.Metrics.QueueDepth == 1, "the second request to take the queue slot");
        var refused = (await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => s.Generate(body)))).ToList();
        s.Gate.Open();
        var responses = refused.Concat(await Task.WhenAll(running, queued)).ToList();
        Assert.IsTrue(refused.All(r => r.StatusCode == HttpStatusCode.TooManyRequests), $"statuses: {string.Join(", ", responses.Select(r => (int)r.StatusCode))}");
        Assert.IsTrue(responses.Count(r => r.StatusCode == HttpStatusCode.OK) == 2, "the held and the queued request finish");
        Assert.IsNotNull(refused[0].Headers.RetryAfter?.Delta, "Retry-After is set");
        StringAssert.Contains((await Json(refused[0])).GetProperty("error").GetProperty("message").GetString(), "retry in");
        await AssertStillServes(s);
    }

    [TestMethod]
    public async Task AClientThatDisconnectsCancelsItsWorkAndATimeoutAnswers504()
    {
        // A real socket: the server learns of the disconnect from the connection closing.
        await using var s = await Running.StartOnSocket(new ServerOptions { RequestTimeout = TimeSpan.FromSeconds(2) }, gated: true);
        using (var gone = new CancellationTokenSource())
        {
            var abandoned = s.Generate($"{{\"prompt\": {JsonSerializer.Serialize(Prompt)}, \"steps\": 2}}", gone.Token);
            await s.Gate!.WaitUntilHeld(); // the request is inside the AR stage, held there
            gone.Cancel();
            await Assert.ThrowsAsync<TaskCanceledException>(() => abandoned);
        }
        await WaitFor(() => s.Batching.Metrics.Cancelled == 1, "the abandoned request to be cancelled");
        Assert.AreEqual(0, s.Batching.Metrics.Completed, "and not finished");

        // Held until the 2 s timeout cancels it, however fast the machine is.
        var slow = await s.Generate($"{{\"prompt\": {JsonSerializer.Serialize(Prompt)}, \"steps\": 2, \"n\": 4}}");
        Assert.AreEqual(HttpStatusCode.GatewayTimeout, slow.StatusCode);
        StringAssert.Contains((await Json(slow)).GetProperty("error").GetProperty("message").GetString(), "did not finish within 2 s");
        s.Gate.Open();
        await AssertStillServes(s);
    }

    /// <summary>Waits for a condition that the code under test makes true soon; the deadline only bounds a failure.</summary>
    private static async Task WaitFor(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) Assert.Fail($"timed out waiting for {what}");
            await Task.Delay(10);
        }
    }

    [TestMethod]
    public async Task EditsTakeAnUploadedImageStreamingReportsProgressAndTheApiKeyIsEnforced()
    {
        await using var s = await Running.Start(new ServerOptions { ApiKey = "k3y" });
        Assert.AreEqual(HttpStatusCode.Unauthorized, (await s.Generate($"{{\"prompt\": {JsonSerializer.Serialize(Prompt)}}}")).StatusCode);
        Assert.AreEqual(HttpStatusCode.OK, (await s.Client.GetAsync("health")).StatusCode, "health needs no key");
        s.Client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "k3y");

        var source = new Tessera.Datasets.SampleGenerator(seed: 3).Sample(Tessera.Datasets.DataSplit.Validation, 0);
        using var form = new MultipartFormDataContent
        {
            { new ByteArrayContent(Tessera.Data.ImageFiles.EncodePng(source.Rgb, 64, 64)) { Headers = { ContentType = new MediaTypeHeaderValue("image/png") } }, "image", "source.png" },
            { new StringContent("the word \"MOON\" in blue on a white background"), "prompt" },
            { new StringContent("5"), "seed" },
        };
        var edit = await s.Client.PostAsync("v1/images/edits", form);
        Assert.AreEqual(HttpStatusCode.OK, edit.StatusCode, await edit.Content.ReadAsStringAsync());
        var preview = (await Json(edit)).GetProperty("data")[0].GetProperty("preview_tokens").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        Assert.AreEqual(16, preview.Length);

        var notImage = await s.Client.PostAsync("v1/images/edits", new StringContent("{\"prompt\": \"the word \\\"SUN\\\"\", \"image\": \"aGVsbG8=\"}", Encoding.UTF8, "application/json"));
        Assert.AreEqual(HttpStatusCode.BadRequest, notImage.StatusCode);
        StringAssert.Contains(await notImage.Content.ReadAsStringAsync(), "is not an image");

        var stream = await s.Generate($"{{\"prompt\": {JsonSerializer.Serialize(Prompt)}, \"seed\": 2, \"steps\": 3, \"stream\": true}}");
        Assert.AreEqual("text/event-stream", stream.Content.Headers.ContentType?.MediaType);
        var text = await stream.Content.ReadAsStringAsync();
        StringAssert.Contains(text, "event: progress\ndata: {\"index\":0,\"n\":1,\"stage\":\"ar\",\"done\":80,\"total\":80}");
        StringAssert.Contains(text, "\"stage\":\"decoder\",\"done\":3,\"total\":3}");
        Assert.IsTrue(text.TrimEnd().Split("\n\n").Last().StartsWith("event: result\ndata: {"), "the result comes last");
    }
}
