using System.Diagnostics;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Tessera.Pipeline;

namespace Tessera.Server.Tests;

/// <summary>
/// The web page at / driven in headless Chromium through the DevTools protocol: type a prompt, press Generate,
/// watch the progress bar, and check the image against the API's bytes for the same seed.
/// </summary>
[TestClass]
public sealed class WebPageTests
{
    private const string Chromium = "/usr/bin/chromium";

    /// <summary>A minimal DevTools-protocol client: one page, Runtime.evaluate.</summary>
    private sealed class DevTools : IAsyncDisposable
    {
        private readonly ClientWebSocket _socket = new();
        private int _id;

        public static async Task<DevTools> Connect(Uri page)
        {
            var d = new DevTools();
            await d._socket.ConnectAsync(page, CancellationToken.None);
            return d;
        }

        public async Task<JsonNode?> Evaluate(string expression)
        {
            int id = ++_id;
            var message = new JsonObject
            {
                ["id"] = id, ["method"] = "Runtime.evaluate",
                ["params"] = new JsonObject { ["expression"] = expression, ["returnByValue"] = true, ["awaitPromise"] = true },
            };
            await _socket.SendAsync(Encoding.UTF8.GetBytes(message.ToJsonString()), WebSocketMessageType.Text, true, CancellationToken.None);
            var buffer = new byte[1 << 20];
            while (true)
            {
                using var ms = new MemoryStream();
                WebSocketReceiveResult r;
                do { r = await _socket.ReceiveAsync(buffer, CancellationToken.None); ms.Write(buffer, 0, r.Count); } while (!r.EndOfMessage);
                var reply = JsonNode.Parse(ms.ToArray())!;
                if (reply["id"]?.GetValue<int>() != id) continue; // an event
                if (reply["result"]?["exceptionDetails"] is { } ex) throw new InvalidOperationException($"page script failed: {ex.ToJsonString()}");
                return reply["result"]?["result"]?["value"];
            }
        }

        public async ValueTask DisposeAsync()
        {
            try { await _socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "", CancellationToken.None); } catch (WebSocketException) { }
            _socket.Dispose();
        }
    }

    [TestMethod]
    public async Task ThePageGeneratesAnImageWithProgressInHeadlessChromium()
    {
        if (!File.Exists(Chromium)) Assert.Inconclusive($"{Chromium} is not installed (apt-get install chromium; .ci/run installs it).");
        await using var s = await ServerTests.Running.StartOnSocket();
        var profile = Directory.CreateTempSubdirectory("tessera-chromium-");
        var psi = new ProcessStartInfo(Chromium) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[] { "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", $"--user-data-dir={profile.FullName}", "--remote-debugging-port=0", s.Server.BaseAddress.ToString() })
            psi.ArgumentList.Add(a);
        using var browser = Process.Start(psi)!;
        try
        {
            // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/<id>"
            string? line;
            Uri? devtools = null;
            var until = DateTime.UtcNow.AddSeconds(30);
            while (devtools is null && DateTime.UtcNow < until && (line = await browser.StandardError.ReadLineAsync()) is not null)
                if (line.Contains("DevTools listening on ")) devtools = new Uri(line[(line.IndexOf("ws://", StringComparison.Ordinal))..].Trim());
            Assert.IsNotNull(devtools, "Chromium printed its DevTools address");
            _ = browser.StandardError.ReadToEndAsync();
            using var http = new HttpClient();
            JsonArray targets;
            var deadline = DateTime.UtcNow.AddSeconds(20);
            do
            {
                targets = JsonNode.Parse(await http.GetStringAsync($"http://{devtools.Authority}/json/list"))!.AsArray();
                if (targets.Any(t => t!["type"]!.GetValue<string>() == "page" && t["url"]!.GetValue<string>().StartsWith(s.Server.BaseAddress.ToString()))) break;
                await Task.Delay(100);
            } while (DateTime.UtcNow < deadline);
            var page = targets.FirstOrDefault(t => t!["type"]!.GetValue<string>() == "page" && t["url"]!.GetValue<string>().StartsWith(s.Server.BaseAddress.ToString()))
                ?? targets.First(t => t!["type"]!.GetValue<string>() == "page");
            await using var tab = await DevTools.Connect(new Uri(page!["webSocketDebuggerUrl"]!.GetValue<string>()));

            // Wait for the page, then use it as a person would.
            if ((await tab.Evaluate("location.href"))?.GetValue<string>() != s.Server.BaseAddress.ToString())
                await tab.Evaluate($"location.href = '{s.Server.BaseAddress}'; true");
            for (int i = 0; i < 200 && (await tab.Evaluate("document.readyState === 'complete' && !!document.getElementById('generate')"))?.GetValue<bool>() != true; i++) await Task.Delay(100);
            const string prompt = "the word \\\"MOON\\\" in red on a yellow background";
            await tab.Evaluate($"document.getElementById('prompt').value = \"{prompt}\"; document.getElementById('seed').value = '11'; document.getElementById('generate').click(); true");
            var progressSeen = new HashSet<double>();
            string state = "";
            var stop = DateTime.UtcNow.AddSeconds(60);
            while (DateTime.UtcNow < stop)
            {
                var snapshot = await tab.Evaluate("({ state: document.body.dataset.state || '', progress: document.getElementById('progress').value })");
                state = snapshot!["state"]!.GetValue<string>();
                progressSeen.Add(snapshot["progress"]!.GetValue<double>());
                if (state is "done" or "error") break;
                await Task.Delay(20);
            }
            var result = (await tab.Evaluate(
                "new Promise(r => { const img = document.getElementById('result'); const go = () => r({ src: img.src, width: img.naturalWidth, height: img.naturalHeight, status: document.getElementById('status').textContent }); img.complete ? go() : img.onload = go; })"))!;
            Assert.AreEqual("done", state, result["status"]?.GetValue<string>());
            Assert.AreEqual(64, result["width"]!.GetValue<int>());
            Assert.AreEqual(64, result["height"]!.GetValue<int>());
            StringAssert.StartsWith(result["status"]!.GetValue<string>(), "done: seed 11");
            Assert.IsTrue(progressSeen.Any(p => p > 0 && p < 100), $"the progress bar moved: {string.Join(", ", progressSeen.Order())}");

            var src = result["src"]!.GetValue<string>();
            var png = Convert.FromBase64String(src["data:image/png;base64,".Length..]);
            CollectionAssert.AreEqual(s.Batching.Generator.Generate(new GenerationRequest("the word \"MOON\" in red on a yellow background") { Seed = 11 }).Png, png,
                "the page shows the same image the API makes for that seed");
        }
        finally
        {
            try { browser.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            browser.WaitForExit(5000);
            try { profile.Delete(recursive: true); } catch (IOException) { }
        }
    }
}
