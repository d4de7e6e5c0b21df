using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Tessera.Tests.Corpus;

namespace Tessera.Server.Tests;

/// <summary>
/// `tessera serve` as a separate process (so its memory is its own) on the shipped model, fed the hostile HTTP
/// corpus: every case gets its documented status and JSON error, and after each the server answers /health and the
/// same image bytes for the same seed.
/// </summary>
[TestClass]
public sealed class HostileServerTests
{
    private const string Prompt = "the word \"MOON\" in red on a yellow background";
    private string _temp = "";

    [TestInitialize]
    public void Init() => _temp = TestPaths.NewTempDir();

    [TestCleanup]
    public void Cleanup() => Directory.Delete(_temp, recursive: true);

    /// <summary>A running `tessera serve`; disposing kills it and anything it started.</summary>
    private sealed class Server : IDisposable
    {
        private readonly Process _process;
        private readonly StringBuilder _log = new();
        public HttpClient Client { get; }
        public Uri Address { get; }
        public int Pid => _process.Id;

        public Server(string cache, params string[] args)
        {
            var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
            psi.ArgumentList.Add(TestPaths.CliDll);
            psi.ArgumentList.Add("serve");
            psi.ArgumentList.Add("--port");
            psi.ArgumentList.Add("0");
            foreach (var a in args) psi.ArgumentList.Add(a);
            psi.Environment["TESSERA_CACHE_DIR"] = cache;
            psi.Environment.Remove("TESSERA_PLUGIN_PATH");
            psi.Environment.Remove("TESSERA_MODEL");
            psi.Environment.Remove("TESSERA_API_KEY");
            _process = Process.Start(psi)!;
            _process.ErrorDataReceived += (_, e) => { lock (_log) _log.AppendLine(e.Data); };
            _process.BeginErrorReadLine();
            var deadline = DateTime.UtcNow.AddSeconds(90);
            string? line;
            Uri? address = null;
            while (address is null && (line = ReadLine(_process.StandardOutput, deadline)) is not null)
                if (line.StartsWith("listening on ", StringComparison.Ordinal)) address = new Uri(line["listening on ".Length..].Trim());
            if (address is null)
            {
                Dispose();
                Assert.Fail($"tessera serve did not start: {Log}");
            }
            Address = address!;
            Client = new HttpClient { BaseAddress = Address, Timeout = TimeSpan.FromMinutes(2) };
        }

        private static string? ReadLine(StreamReader reader, DateTime deadline)
        {
            var task = reader.ReadLineAsync();
            return task.Wait(deadline - DateTime.UtcNow) ? task.Result : null;
        }

        public string Log { get { lock (_log) return _log.ToString(); } }

        /// <summary>Peak resident memory of the server process so far (VmHWM), in bytes.</summary>
        public long PeakRss() => Status("VmHWM");

        private long Status(string key) =>
            long.Parse(File.ReadLines($"/proc/{_process.Id}/status").First(l => l.StartsWith(key + ":")).Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;

        public async Task<byte[]> Image(int seed)
        {
            var response = await Client.PostAsync("v1/images/generations",
                new StringContent($"{{\"prompt\": {JsonSerializer.Serialize(Prompt)}, \"seed\": {seed}, \"steps\": 2}}", Encoding.UTF8, "application/json"));
            Assert.AreEqual(HttpStatusCode.OK, response.StatusCode, await response.Content.ReadAsStringAsync());
            using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            return Convert.FromBase64String(doc.RootElement.GetProperty("data")[0].GetProperty("b64_json").GetString()!);
        }

        /// <summary>The server is alive, healthy, and makes the same bytes as before.</summary>
        public async Task AssertHealthyAndCorrect(byte[] reference, string after)
        {
            Assert.IsFalse(_process.HasExited, $"the server is still running after {after}\n{Log}");
            var health = await Client.GetAsync("health");
            Assert.AreEqual(HttpStatusCode.OK, health.StatusCode, $"/health after {after}");
            CollectionAssert.AreEqual(reference, await Image(1), $"the same seed gives the same bytes after {after}");
        }

        public void Dispose()
        {
            Client?.Dispose();
            if (!_process.HasExited) _process.Kill(entireProcessTree: true);
            _process.WaitForExit(10_000);
            _process.Dispose();
        }
    }

    private static byte[] SmallPng()
    {
        // A valid 64x64 RGB PNG: the bomb writer makes any size of one colour.
        return BombPng.Bytes(64, 64);
    }

    private static HttpRequestMessage Request(JsonElement c, byte[] png)
    {
        var request = new HttpRequestMessage(new HttpMethod(c.GetProperty("method").GetString()!), c.GetProperty("path").GetString());
        string? type = c.TryGetProperty("contentType", out var ct) && ct.ValueKind == JsonValueKind.String ? ct.GetString() : null;
        byte[]? body = null;
        if (c.TryGetProperty("bodyBase64", out var b64)) body = Convert.FromBase64String(b64.GetString()!);
        else if (c.TryGetProperty("body", out var text) && text.ValueKind == JsonValueKind.String) body = Encoding.UTF8.GetBytes(text.GetString()!);
        else if (c.TryGetProperty("multipartLines", out var lines))
        {
            var ms = new MemoryStream();
            var parts = lines.EnumerateArray().Select(l => l.GetString()!).ToList();
            for (int i = 0; i < parts.Count; i++)
            {
                if (parts[i] == "{png}") ms.Write(png);
                else ms.Write(Encoding.Latin1.GetBytes(parts[i]));
                if (i < parts.Count - 1) ms.Write("\r\n"u8);
            }
            body = ms.ToArray();
        }
        if (body is not null)
        {
            request.Content = new ByteArrayContent(body);
            if (type is not null) request.Content.Headers.TryAddWithoutValidation("Content-Type", type);
        }
        if (c.TryGetProperty("headers", out var headers))
            foreach (var h in headers.EnumerateObject())
            {
                if (h.Name == "Host") request.Headers.Host = h.Value.GetString();
                else request.Headers.TryAddWithoutValidation(h.Name, h.Value.GetString());
            }
        return request;
    }

    [TestMethod]
    public async Task EveryCorpusRequestGetsItsDocumentedStatusAndJsonErrorAndTheServerStaysHealthyAndCorrect()
    {
        using var server = new Server(Path.Combine(_temp, "cache"));
        var reference = await server.Image(1);
        var png = SmallPng();
        foreach (var c in HostileCorpus.Cases("http"))
        {
            var name = c.GetProperty("name").GetString()!;
            using var response = await server.Client.SendAsync(Request(c, png));
            var text = await response.Content.ReadAsStringAsync();
            Assert.AreEqual(c.GetProperty("status").GetInt32(), (int)response.StatusCode, $"{name}: {text}");
            Assert.AreEqual("application/json", response.Content.Headers.ContentType?.MediaType, $"{name}: the error is JSON");
            using var doc = JsonDocument.Parse(text);
            var error = doc.RootElement.GetProperty("error");
            var message = error.GetProperty("message").GetString()!;
            StringAssert.Contains(message, c.GetProperty("contains").GetString()!, name);
            Assert.IsFalse(message.Contains("\n") || message.Contains("   at "), $"{name}: one line, no stack trace: {message}");
            if (c.TryGetProperty("param", out var param))
                Assert.AreEqual(param.GetString(), error.GetProperty("param").GetString(), $"{name}: param");
            await server.AssertHealthyAndCorrect(reference, name);
        }
        // The image corpus as multipart uploads to /v1/images/edits.
        foreach (var c in HostileCorpus.Cases("images"))
        {
            var file = c.GetProperty("file").GetString()!;
            using var form = new MultipartFormDataContent
            {
                { new ByteArrayContent(File.ReadAllBytes(Path.Combine(HostileCorpus.Root, "images", file))) { Headers = { ContentType = new MediaTypeHeaderValue("image/png") } }, "image", file },
                { new StringContent(Prompt), "prompt" },
            };
            using var response = await server.Client.PostAsync("v1/images/edits", form);
            var text = await response.Content.ReadAsStringAsync();
            Assert.AreEqual(HttpStatusCode.BadRequest, response.StatusCode, $"{file}: {text}");
            using var doc = JsonDocument.Parse(text);
            Assert.AreEqual("image", doc.RootElement.GetProperty("error").GetProperty("param").GetString(), file);
            StringAssert.Contains(doc.RootElement.GetProperty("error").GetProperty("message").GetString(), c.GetProperty("contains").GetString()!, file);
            await server.AssertHealthyAndCorrect(reference, file);
        }
        var metrics = await server.Client.GetStringAsync("metrics");
        StringAssert.Contains(metrics, "tessera_requests_total{outcome=\"invalid\"} ");
        Assert.IsFalse(server.Log.Contains("   at "), $"no stack trace in the server log\n{server.Log}");
    }

    [TestMethod]
    public async Task SixConcurrentBombEditsAre400NamingTheLimitAndPeakMemoryGrowsByLessThan200MB()
    {
        using var server = new Server(Path.Combine(_temp, "cache"));
        var reference = await server.Image(1); // warm: model loaded, one image made
        var bomb = BombPng.Bytes(10000, 10000);
        Assert.IsTrue(bomb.Length < 1 << 20, $"the bomb is {bomb.Length} bytes");
        long before = server.PeakRss();

        async Task<(HttpStatusCode, string)> Edit(int i)
        {
            HttpContent content;
            if (i == 5)
                content = new StringContent($"{{\"prompt\": {JsonSerializer.Serialize(Prompt)}, \"image\": \"{Convert.ToBase64String(bomb)}\"}}", Encoding.UTF8, "application/json");
            else
                content = new MultipartFormDataContent
                {
                    { new ByteArrayContent(bomb) { Headers = { ContentType = new MediaTypeHeaderValue("image/png") } }, "image", "bomb.png" },
                    { new StringContent(Prompt), "prompt" },
                };
            using var response = await server.Client.PostAsync("v1/images/edits", content);
            return (response.StatusCode, await response.Content.ReadAsStringAsync());
        }
        var results = await Task.WhenAll(Enumerable.Range(0, 6).Select(Edit));
        long after = server.PeakRss();

        foreach (var (status, body) in results)
        {
            Assert.AreEqual(HttpStatusCode.BadRequest, status, body);
            StringAssert.Contains(body, "10000x10000 pixels; the limit is 4096 pixels per side");
        }
        Assert.IsTrue(after - before < 200L << 20, $"peak RSS grew by {(after - before) >> 20} MB (from {before >> 20} MB)");
        await server.AssertHealthyAndCorrect(reference, "the bombs");
    }

    [TestMethod]
    public async Task TheApiKeyIsCheckedWithAnyCaseOfBearerAndOtherHostNamesOnlyWhenAllowed()
    {
        using var server = new Server(Path.Combine(_temp, "cache"), "--api-key", "s3cret", "--allowed-host", "images.example");
        var body = $"{{\"prompt\": {JsonSerializer.Serialize(Prompt)}, \"seed\": 1, \"steps\": 2}}";
        async Task<HttpStatusCode> Post(string? authorization, string? host = null)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "v1/images/generations") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
            if (authorization is not null) request.Headers.TryAddWithoutValidation("Authorization", authorization);
            if (host is not null) request.Headers.Host = host;
            using var response = await server.Client.SendAsync(request);
            return response.StatusCode;
        }
        Assert.AreEqual(HttpStatusCode.Unauthorized, await Post(null));
        Assert.AreEqual(HttpStatusCode.Unauthorized, await Post("Bearer s3cre"));
        Assert.AreEqual(HttpStatusCode.Unauthorized, await Post("Bearer s3cret-and-more"));
        Assert.AreEqual(HttpStatusCode.Unauthorized, await Post("Basic s3cret"));
        Assert.AreEqual(HttpStatusCode.OK, await Post("Bearer s3cret"));
        Assert.AreEqual(HttpStatusCode.OK, await Post("bearer s3cret"), "the scheme is case-insensitive");
        Assert.AreEqual(HttpStatusCode.OK, await Post("BEARER s3cret"));
        Assert.AreEqual(HttpStatusCode.OK, await Post("Bearer s3cret", "images.example"), "an allowed host name");
        Assert.AreEqual(HttpStatusCode.OK, await Post("Bearer s3cret", $"localhost:{server.Address.Port}"), "loopback names are always allowed");
        Assert.AreEqual(HttpStatusCode.BadRequest, await Post("Bearer s3cret", "evil.example"), "other host names are refused (DNS rebinding)");
    }

    [TestMethod]
    public async Task ARequestWhoseBodyNeverArrivesIsAnswered408WithinTheRequestTimeout()
    {
        using var server = new Server(Path.Combine(_temp, "cache"), "--timeout", "2");
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(server.Address.Host, server.Address.Port);
        var stream = tcp.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            $"POST /v1/images/generations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"prompt\": "));
        var buffer = new byte[4096];
        using var read = new CancellationTokenSource(TimeSpan.FromSeconds(60)); // a hang guard; the answer names the 2 s limit that fired
        int n = await stream.ReadAsync(buffer, read.Token);
        var head = Encoding.ASCII.GetString(buffer, 0, n);
        StringAssert.StartsWith(head, "HTTP/1.1 408", head);
        StringAssert.Contains(head, "did not arrive within 2 s");
    }
}
