using Tessera.Abstractions;
using Tessera.Data;
using Tessera.Datasets;
using Tessera.Data.Prompting;
using Tessera.Engine;
using Tessera.Pipeline;

namespace Tessera.Pipeline.Tests;

[TestClass]
public sealed class PipelineTests
{
    private static string _dir = "";
    private static ModelPackage _package = null!;
    private const string Prompt = "the word \"MOON\" in red on a yellow background";

    [ClassInitialize]
    public static void Init(TestContext _)
    {
        _dir = Path.Combine(Path.GetTempPath(), "tessera-tests", "pkg-" + Guid.NewGuid().ToString("N"));
        _package = ModelPackage.Open(TinyPackage.Create(Path.Combine(_dir, "model")));
    }

    [ClassCleanup]
    public static void Cleanup() => Directory.Delete(_dir, recursive: true);

    private static TesseraEngine Engine(int cpuDevices = 1)
    {
        var o = new EngineOptions { UseDefaultPluginDirectory = false, UseEnvironmentPluginPath = false, CacheDirectory = Path.Combine(_dir, "cache") };
        o.PluginDirectories.Add(Path.Combine(AppContext.BaseDirectory, "fixtures", "cpu"));
        o.PluginSettings["cpu"] = new() { ["devices"] = cpuDevices.ToString() };
        return new TesseraEngine(o);
    }

    [TestMethod]
    public void TheSameSeedAndInputsGiveTheSamePngBytesAndAnotherSeedDiffers()
    {
        using var engine = Engine();
        using var generator = new ImageGenerator(engine, _package, "cpu:0", "cpu:0");
        var a = generator.Generate(new GenerationRequest(Prompt) { Seed = 3 });
        var b = generator.Generate(new GenerationRequest(Prompt) { Seed = 3 });
        var c = generator.Generate(new GenerationRequest(Prompt) { Seed = 4 });
        CollectionAssert.AreEqual(a.Png, b.Png);
        CollectionAssert.AreNotEqual(a.Png, c.Png);
        Assert.AreEqual(16, a.PreviewTokens.Length);
        Assert.AreEqual(64, a.TargetTokens.Length);
        Assert.AreEqual(64 * 64 * 3, a.Rgb.Length);
        Assert.IsTrue(a.Rgb.Distinct().Count() > 10, "the image is not flat");
    }

    [TestMethod]
    public void AGlyphImagePackageGeneratesDeterministicallyAndNeedsItsPlacementTable()
    {
        var dir = TinyPackage.Create(Path.Combine(_dir, "glyph"), seed: 4, glyphImage: true);
        var package = ModelPackage.Open(dir);
        Assert.IsNotNull(package.Placement);
        using (var engine = Engine())
        using (var generator = new ImageGenerator(engine, package, "cpu:0", "cpu:0"))
        {
            var a = generator.Generate(new GenerationRequest(Prompt) { Seed = 3 });
            CollectionAssert.AreEqual(a.Png, generator.Generate(new GenerationRequest(Prompt) { Seed = 3 }).Png);
            var mask = generator.Decoder.GlyphImage(a.TargetTokens, 8, "MOON"u8.ToArray())!;
            Assert.AreEqual(64 * 64, mask.Length);
            Assert.IsTrue(mask.Count(v => v > 0.5f) > 60, "the glyph image shows the word");
        }
        File.Delete(Path.Combine(dir, "placement.json"));
        var e = Assert.ThrowsExactly<ModelLoadException>(() => ModelPackage.Open(dir));
        StringAssert.Contains(e.Message, "placement.json");
    }

    [TestMethod]
    public void KvCacheDecodingGivesTheSameTokensAsRecomputingWithoutCache()
    {
        using var engine = Engine();
        using var generator = new ImageGenerator(engine, _package, "cpu:0", "cpu:0");
        var prompt = _package.Prompts.Encode(Prompt);
        var cached = generator.Ar.Generate(prompt, new TokenSampler(0.9, 16, 0.95, 7), useKvCache: true);
        var recomputed = generator.Ar.Generate(prompt, new TokenSampler(0.9, 16, 0.95, 7), useKvCache: false);
        CollectionAssert.AreEqual(cached.Preview.Concat(cached.Target).ToArray(), recomputed.Preview.Concat(recomputed.Target).ToArray());
    }

    [TestMethod]
    public void TwoDevicePlacementGivesTheSameTokensAndTheSameImageAsOneDevice()
    {
        // cpu:0 and cpu:1 are disjoint thread pools of the same CPU EP; kernels are the same, so results are identical.
        using var engine = Engine(cpuDevices: 2);
        using var one = new ImageGenerator(engine, _package, "cpu:0", "cpu:0");
        using var two = new ImageGenerator(engine, _package, "cpu:0", "cpu:1");
        Assert.AreEqual("cpu:1", two.DecoderDevice.ToString());
        var a = one.Generate(new GenerationRequest(Prompt) { Seed = 9 });
        var b = two.Generate(new GenerationRequest(Prompt) { Seed = 9 });
        CollectionAssert.AreEqual(a.TargetTokens, b.TargetTokens);
        CollectionAssert.AreEqual(a.Rgb, b.Rgb);
    }

    [TestMethod]
    public void ImageToImageUsesTheSourceTokensAsThePreviewGrid()
    {
        using var engine = Engine();
        using var generator = new ImageGenerator(engine, _package, "cpu:0", "cpu:0");
        var source = new SampleGenerator(1).Sample(DataSplit.Validation, 0).Rgb;
        var a = generator.Generate(new GenerationRequest(Prompt) { Seed = 1, SourceRgb = source });
        var b = generator.Generate(new GenerationRequest(Prompt) { Seed = 2, SourceRgb = source });
        CollectionAssert.AreEqual(a.PreviewTokens, b.PreviewTokens, "the preview comes from the source, not the seed");
    }

    [TestMethod]
    public void BadInputsGetClearErrorsNamingTheThing()
    {
        using var engine = Engine();
        using var generator = new ImageGenerator(engine, _package, "cpu:0", "cpu:0");
        StringAssert.Contains(Assert.ThrowsExactly<GenerationParameterException>(() => generator.Generate(new GenerationRequest("  "))).Message, "empty");
        StringAssert.Contains(Assert.ThrowsExactly<GenerationParameterException>(() => generator.Generate(new GenerationRequest(string.Join(" ", Enumerable.Repeat("red", 80))))).Message, "limit");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => new ImageGenerator(engine, _package, "npu:3", "cpu:0")).Message, "Unknown device 'npu:3'");

        var missing = Path.Combine(_dir, "no-such-model");
        StringAssert.Contains(Assert.ThrowsExactly<ModelLoadException>(() => ModelPackage.Open(missing)).Message, missing);

        var broken = TinyPackage.Create(Path.Combine(_dir, "broken"), seed: 2);
        var ar = Path.Combine(broken, "ar.onnx");
        File.WriteAllBytes(ar, File.ReadAllBytes(ar)[..1000]);
        var e = Assert.ThrowsExactly<ModelLoadException>(() => new ImageGenerator(engine, ModelPackage.Open(broken), "cpu:0", "cpu:0"));
        StringAssert.Contains(e.Message, ar);
        StringAssert.Contains(e.Message, "not a valid ONNX file");

        var notImage = Path.Combine(_dir, "notes.png");
        File.WriteAllText(notImage, "not an image");
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => ImageFiles.ReadRgb(notImage, 64)).Message, notImage);
    }
}

[TestClass]
public sealed class TextEvaluationTests
{
    private static Tessera.Evaluation.Ocr RequireOcr() =>
        Tessera.Evaluation.Ocr.Find(out var why) ?? throw new AssertInconclusiveException(why ?? "tesseract is not installed");

    [TestMethod]
    public void OcrReadsGroundTruthRendersAndEditDistanceIsNormalised()
    {
        var ocr = RequireOcr();
        var data = new SampleGenerator(0, shapeProbability: 0);
        var moon = data.Render("MOON", Palette.Colors.Single(c => c.Name == "black"), Palette.Colors.Single(c => c.Name == "white"));
        Assert.AreEqual("MOON", ocr.Read(moon.Rgb, moon.Size));
        Assert.AreEqual(0.0, Tessera.Evaluation.Ocr.NormalizedEditDistance("MOON", "MOON"));
        Assert.AreEqual(0.25, Tessera.Evaluation.Ocr.NormalizedEditDistance("MOON", "MOAN"));
        Assert.AreEqual(1.0, Tessera.Evaluation.Ocr.NormalizedEditDistance("", "CAT"));
    }

    [TestMethod]
    public void EvalTextScoresSeenAndUnseenWordsAgainstTheGroundTruthCeiling()
    {
        var ocr = RequireOcr();
        var dir = Path.Combine(Path.GetTempPath(), "tessera-tests", "eval-" + Guid.NewGuid().ToString("N"));
        try
        {
            var package = ModelPackage.Open(TinyPackage.Create(Path.Combine(dir, "model"), seed: 5));
            var o = new EngineOptions { UseDefaultPluginDirectory = false, UseEnvironmentPluginPath = false, CacheDirectory = Path.Combine(dir, "cache") };
            o.PluginDirectories.Add(Path.Combine(AppContext.BaseDirectory, "fixtures", "cpu"));
            using var engine = new TesseraEngine(o);
            using var generator = new ImageGenerator(engine, package, "cpu:0", "cpu:0");
            var (seen, unseen, cases) = Tessera.Evaluation.TextEvaluation.Run(generator, ocr, 4, 0, steps: 2);
            Assert.AreEqual(2, seen.Count);
            Assert.AreEqual(2, unseen.Count);
            Assert.IsTrue(cases.Where(c => !c.Seen).All(c => WordSplits.Unseen.Contains(c.Word)));
            Assert.IsTrue(seen.CeilingWordAccuracy + unseen.CeilingWordAccuracy > 0, "OCR reads at least one ground-truth render");
            Assert.AreEqual(0.0, seen.WordAccuracy + unseen.WordAccuracy, "a random-weight model renders no readable word");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}

[TestClass]
public sealed class ApplicationApiTests
{
    [TestMethod]
    public async Task AddTesseraResolvesAPipelineThatGeneratesAndHonoursCancellation()
    {
        var dir = Path.Combine(Path.GetTempPath(), "tessera-tests", "di-" + Guid.NewGuid().ToString("N"));
        try
        {
            var model = TinyPackage.Create(Path.Combine(dir, "model"), seed: 3);
            var services = new Microsoft.Extensions.DependencyInjection.ServiceCollection();
            Microsoft.Extensions.DependencyInjection.TesseraServiceCollectionExtensions.AddTessera(services, o =>
            {
                o.ModelDirectory = model;
                o.Engine.UseDefaultPluginDirectory = false;
                o.Engine.UseEnvironmentPluginPath = false;
                o.Engine.CacheDirectory = Path.Combine(dir, "cache");
                o.Engine.PluginDirectories.Add(Path.Combine(AppContext.BaseDirectory, "fixtures", "cpu"));
                o.Engine.PluginSettings["cpu"] = new() { ["devices"] = "2" };
                o.Engine.Placement["decoder"] = "cpu:1";
            });
            using var provider = Microsoft.Extensions.DependencyInjection.ServiceCollectionContainerBuilderExtensions.BuildServiceProvider(services);
            var pipeline = (ITextToImage)provider.GetService(typeof(ITextToImage))!;

            var result = await pipeline.GenerateAsync(new GenerationRequest("the word \"SUN\" in blue on a white background") { Seed = 1 });
            Assert.AreEqual(64, result.Size);
            CollectionAssert.AreEqual(new byte[] { 0x89, 0x50, 0x4E, 0x47 }, result.Png[..4], "a PNG signature");

            using var cancelled = new CancellationTokenSource();
            cancelled.Cancel();
            await Assert.ThrowsExactlyAsync<TaskCanceledException>(() => pipeline.GenerateAsync(new GenerationRequest("the word \"SUN\""), cancellationToken: cancelled.Token));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
