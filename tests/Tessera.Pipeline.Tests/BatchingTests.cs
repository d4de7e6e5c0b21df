using Tessera.Engine;
using Tessera.Pipeline;
using Tessera.Pipeline.Batching;

namespace Tessera.Pipeline.Tests;

/// <summary>Continuous batching on the shipped default model: batched requests get what they get alone.</summary>
[TestClass]
public sealed class BatchingTests
{
    private static string _dir = "";

    [ClassInitialize]
    public static void Init(TestContext _) => _dir = Path.Combine(Path.GetTempPath(), "tessera-tests", "batch-" + Guid.NewGuid().ToString("N"));

    [ClassCleanup]
    public static void Cleanup() { if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true); }

    private static TesseraEngine Engine()
    {
        var o = new EngineOptions { UseDefaultPluginDirectory = false, UseEnvironmentPluginPath = false, CacheDirectory = Path.Combine(_dir, "cache") };
        o.PluginDirectories.Add(Path.Combine(AppContext.BaseDirectory, "fixtures", "cpu"));
        return new TesseraEngine(o);
    }

    /// <summary>Prompts of different lengths, so the batch mixes cache lengths (left padding) and prefills.</summary>
    private static readonly GenerationRequest[] Requests =
    [
        new("the word \"MOON\" in red on a yellow background") { Seed = 1 },
        new("the word \"CAT\" in white on a black background with a blue circle") { Seed = 2 },
        new("the word \"GARDEN\" in green on a pink background") { Seed = 3, Cfg = 2.0 },
        new("the word \"HAT\" in blue on a white background") { Seed = 4, Steps = 12 },
    ];

    /// <summary>The pixel tolerance docs/serving.md states for batched vs alone: one 8-bit level.</summary>
    public const int PixelTolerance = 1;

    [TestMethod]
    public void BatchedRequestsGetTheSameTokensAndPixelsWithinOneLevelOfRunningAlone()
    {
        var package = ModelPackage.Open(ModelPackage.DefaultDirectory());
        using var engine = Engine();
        using var generator = new ImageGenerator(engine, package, "cpu:0", "cpu:0");
        var alone = Requests.Select(r => generator.Generate(r)).ToList();
        using var batching = new BatchingGenerator(generator, new BatchingOptions { MaxArBatch = 4, MaxDecoderBatch = 4, Window = TimeSpan.Zero });
        batching.ArStart.Reset(); // the AR stage starts once all four are queued, so they share its first step whatever the machine's speed
        var queued = Requests.Select(r => batching.GenerateAsync(r)).ToList();
        batching.ArStart.Set();
        var batched = Task.WhenAll(queued).GetAwaiter().GetResult();
        int worst = 0, differing = 0;
        for (int i = 0; i < Requests.Length; i++)
        {
            CollectionAssert.AreEqual(alone[i].PreviewTokens, batched[i].PreviewTokens, $"request {i}: preview tokens");
            CollectionAssert.AreEqual(alone[i].TargetTokens, batched[i].TargetTokens, $"request {i}: target tokens");
            for (int p = 0; p < alone[i].Rgb.Length; p++)
            {
                int d = Math.Abs(alone[i].Rgb[p] - batched[i].Rgb[p]);
                worst = Math.Max(worst, d);
                if (d > 0) differing++;
            }
        }
        Console.WriteLine($"batched vs alone: worst pixel difference {worst}, {differing} of {Requests.Length * 64 * 64 * 3} values differ");
        Assert.IsTrue(worst <= PixelTolerance, $"worst pixel difference {worst} > {PixelTolerance}");
        Assert.AreEqual(4, batching.Metrics.LargestArBatch, "the four requests shared AR steps");
        Assert.IsTrue(batching.Metrics.LargestDecoderBatch >= 2, "requests shared decoder steps");
        Assert.AreEqual(4, batching.Metrics.Completed);
    }
}
