using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

[assembly: DoNotParallelize]

namespace Tessera.Cluster.Tests;

/// <summary>
/// The cluster as an operator runs it: a real redis-server, real `tessera node` processes (AR-only, decoder-only,
/// both) and a real `tessera serve --cluster` front on loopback; bytes compared with `tessera generate` in one process.
/// </summary>
[TestClass]
public sealed class ClusterTests
{
    private const int Steps = 4;
    private const int SeedsPerPrompt = 6;
    private static readonly string[] Prompts =
    [
        "the word \"MOON\" in red on a yellow background",
        "the word \"SUN\" in blue on a white background",
        "the word \"TREE\" in green on a black background",
        "the word \"STAR\" in white on a blue background",
    ];
    private const ulong BaseSeed = 100;

    /// <summary>(prompt index, seed) → PNG bytes from `tessera generate --n` in one process, same steps.</summary>
    private static readonly Dictionary<(int, ulong), byte[]> Reference = [];

    [ClassInitialize]
    public static void MakeReferences(TestContext _)
    {
        var dir = Directory.CreateTempSubdirectory("tessera-cluster-ref-").FullName;
        try
        {
            for (int p = 0; p < Prompts.Length; p++)
            {
                var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
                foreach (var a in new[] { ClusterProcesses.TesseraDll, "generate", Prompts[p], "--seed", $"{BaseSeed}", "--steps", $"{Steps}", "--n", $"{SeedsPerPrompt}", "-o", Path.Combine(dir, $"p{p}.png") })
                    psi.ArgumentList.Add(a);
                using var proc = Process.Start(psi)!;
                var err = proc.StandardError.ReadToEndAsync();
                proc.StandardOutput.ReadToEnd();
                proc.WaitForExit();
                Assert.AreEqual(0, proc.ExitCode, $"tessera generate failed: {err.Result}");
                for (int i = 0; i < SeedsPerPrompt; i++) Reference[(p, BaseSeed + (ulong)i)] = File.ReadAllBytes(Path.Combine(dir, $"p{p}-{i}.png"));
            }
        }
        finally { Directory.Delete(dir, true); }
    }

    private static async Task<(int Status, byte[]? Png, string Body)> Generate(ClusterProcesses c, int prompt, ulong seed)
    {
        using var response = await c.Http.PostAsJsonAsync(new Uri(c.Front!, "v1/images/generations"), new { prompt = Prompts[prompt], seed, steps = Steps });
        var body = await response.Content.ReadAsStringAsync();
        if (response.StatusCode != HttpStatusCode.OK) return ((int)response.StatusCode, null, body);
        using var doc = JsonDocument.Parse(body);
        var data = doc.RootElement.GetProperty("data");
        Assert.AreEqual(1, data.GetArrayLength());
        return (200, Convert.FromBase64String(data[0].GetProperty("b64_json").GetString()!), body);
    }

    /// <summary>Each (prompt, seed) pair once, run `concurrency` at a time.</summary>
    private static async Task<Dictionary<(int, ulong), (int Status, byte[]? Png, string Body)>> Load(ClusterProcesses c, int seeds, int concurrency)
    {
        var jobs = Enumerable.Range(0, seeds).SelectMany(s => Enumerable.Range(0, Prompts.Length).Select(p => (p, BaseSeed + (ulong)s))).ToList();
        var results = new System.Collections.Concurrent.ConcurrentDictionary<(int, ulong), (int, byte[]?, string)>();
        var answers = 0;
        using var gate = new SemaphoreSlim(concurrency);
        await Task.WhenAll(jobs.Select(async j =>
        {
            await gate.WaitAsync();
            try
            {
                var r = await Generate(c, j.p, j.Item2);
                Interlocked.Increment(ref answers);
                Assert.IsTrue(results.TryAdd(j, r), $"request {j} was answered twice");
            }
            finally { gate.Release(); }
        }));
        Assert.AreEqual(jobs.Count, answers, "every request gets exactly one answer");
        return results.ToDictionary(kv => kv.Key, kv => kv.Value);
    }

    private static void AssertAllMatch(ClusterProcesses c, Dictionary<(int, ulong), (int Status, byte[]? Png, string Body)> results)
    {
        foreach (var (key, r) in results)
        {
            Assert.AreEqual(200, r.Status, $"request {key}: {r.Body}\n{c.Logs()}");
            CollectionAssert.AreEqual(Reference[key], r.Png, $"request {key}: the cluster's PNG differs from tessera generate's with the same prompt and seed");
        }
    }

    [TestMethod]
    public async Task SixteenRequestsAcrossThreeNodesAreAnsweredWithTheSameBytesAsOneProcess()
    {
        using var c = new ClusterProcesses();
        var nodes = new[] { ("ar-only", "ar"), ("decoder-only", "decoder"), ("both", "ar,decoder") }
            .AsParallel().Select(n => c.StartNode(n.Item1, n.Item2)).ToList();
        c.StartFront();
        await c.WaitForNodesAsync(ar: 2, decoder: 2);

        var results = await Load(c, seeds: 4, concurrency: 8);
        Assert.AreEqual(16, results.Count);
        AssertAllMatch(c, results);
        Assert.AreEqual(16, await c.FrontMetricAsync("tessera_requests_total{outcome=\"completed\"}"), "the front counts 16 answered requests");

        var status = c.Status().ToDictionary(n => n.GetProperty("name").GetString()!);
        Assert.AreEqual(3, status.Count, c.Logs());
        CollectionAssert.AreEqual(new[] { "ar" }, ClusterProcesses.WorkerStages(status["ar-only"]), "the AR-only node has no decoder worker");
        CollectionAssert.AreEqual(new[] { "decoder" }, ClusterProcesses.WorkerStages(status["decoder-only"]), "the decoder-only node has no AR worker");
        CollectionAssert.AreEquivalent(new[] { "ar", "decoder" }, ClusterProcesses.WorkerStages(status["both"]));
        Assert.AreEqual(16, status.Values.Sum(n => ClusterProcesses.Completed(n, "ar")), "each request ran its AR stage once");
        Assert.AreEqual(16, status.Values.Sum(n => ClusterProcesses.Completed(n, "decoder")), "each request ran its decoder stage once");
        Assert.IsTrue(ClusterProcesses.Completed(status["ar-only"], "ar") > 0, "the AR-only node took AR work");
        Assert.IsTrue(ClusterProcesses.Completed(status["decoder-only"], "decoder") > 0, "the decoder-only node took decoder work");
    }

    [TestMethod]
    public async Task ANodeKilledDuringLoadLosesNoRequestAndARestartedNodeTakesWorkAgain()
    {
        using var c = new ClusterProcesses();
        var started = new[] { ("ar-only", "ar"), ("decoder-only", "decoder"), ("both", "ar,decoder") }
            .AsParallel().Select(n => (n.Item1, c.StartNode(n.Item1, n.Item2))).ToDictionary(x => x.Item1, x => x.Item2);
        c.StartFront();
        await c.WaitForNodesAsync(ar: 2, decoder: 2);

        var load = Load(c, seeds: SeedsPerPrompt, concurrency: 8);
        // Kill the decoder-only node once it has work in hand (or has finished some).
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (DateTime.UtcNow < deadline && !load.IsCompleted)
        {
            var node = c.Status().FirstOrDefault(n => n.GetProperty("name").GetString() == "decoder-only");
            if (node.ValueKind != JsonValueKind.Undefined && node.GetProperty("workers").EnumerateArray().Any(w => w.GetProperty("active").GetInt32() + w.GetProperty("queued").GetInt32() > 0 || w.GetProperty("completed").GetInt64() > 0)) break;
            await Task.Delay(100);
        }
        Assert.IsFalse(load.IsCompleted, "the load finished before the node could be killed; the test proves nothing");
        c.Kill(started["decoder-only"]);

        var results = await load;
        Assert.AreEqual(24, results.Count);
        AssertAllMatch(c, results);
        // Each request answered once, none failed: the front's own counters (a re-run is not a second answer).
        Assert.AreEqual(24, await c.FrontMetricAsync("tessera_requests_total{outcome=\"completed\"}"), "the front answered 24 requests");
        Assert.AreEqual(24, await c.FrontMetricAsync("tessera_images_total{outcome=\"completed\"}"), "the front delivered 24 images");
        Assert.AreEqual(0, await c.FrontMetricAsync("tessera_requests_total{outcome=\"failed\"}"), "no request failed");
        var survivors = c.Status();
        Assert.IsTrue(survivors.Sum(n => ClusterProcesses.Completed(n, "decoder")) > 0, "the surviving nodes took over decoder work");

        // The killed node leaves cluster status after the membership timeout.
        var leaveBy = DateTime.UtcNow + TimeSpan.FromSeconds(ClusterProcesses.MembershipTimeoutSeconds * 10);
        string[] names = [];
        while (DateTime.UtcNow < leaveBy)
        {
            names = c.Status().Select(n => n.GetProperty("name").GetString()!).ToArray();
            if (!names.Contains("decoder-only")) break;
            await Task.Delay(500);
        }
        CollectionAssert.AreEquivalent(new[] { "ar-only", "both" }, names, "the killed node left the cluster");

        // Restarted, it joins and takes decoder work again.
        c.StartNode("decoder-only", "decoder");
        await c.WaitForNodesAsync(ar: 2, decoder: 2);
        var again = await Load(c, seeds: 2, concurrency: 8);
        AssertAllMatch(c, again);
        var back = c.Status().Single(n => n.GetProperty("name").GetString() == "decoder-only");
        Assert.IsTrue(ClusterProcesses.Completed(back, "decoder") > 0, $"the restarted node took no decoder work\n{c.Logs()}");
    }

    [TestMethod]
    public async Task WithNoDecoderNodeARequestIsAnswered503NamingTheDecoderStageQuickly()
    {
        using var c = new ClusterProcesses();
        c.StartNode("ar-only", "ar");
        c.StartFront();
        await c.WaitForNodesAsync(ar: 1, decoder: 0);
        var watch = Stopwatch.StartNew();
        var (status, _, body) = await Generate(c, 0, BaseSeed);
        watch.Stop();
        Assert.AreEqual(503, status, body);
        StringAssert.Contains(body, "decoder stage");
        StringAssert.Contains(body, "tessera node");
        Assert.IsTrue(watch.Elapsed < TimeSpan.FromSeconds(10), $"the 503 took {watch.Elapsed.TotalSeconds:F1} s; it must not wait for a timeout");
        // The front keeps serving.
        using var health = await c.Http.GetAsync(new Uri(c.Front!, "health"));
        Assert.AreEqual(HttpStatusCode.OK, health.StatusCode);
    }
}
