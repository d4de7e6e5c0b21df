using System.Diagnostics;
using System.Text.Json;
using Tessera.Abstractions;
using Tessera.Data;
using Tessera.Engine;
using Tessera.Pipeline;
using Tessera.Pipeline.Batching;
using Tessera.TestSupport;
using Tessera.Tests.Corpus;

namespace Tessera.Pipeline.Tests;

/// <summary>
/// The bad-input corpus (tests/corpus/hostile) through the C# API: each case is a typed exception whose message
/// names the problem on one line, thrown before anything large is allocated. (Training checkpoints:
/// tests/Tessera.Training.Tests/HostileCorpusTrainingTests.cs.)
/// </summary>
[TestClass]
public sealed class HostileCorpusApiTests
{
    private string _temp = "";

    [TestInitialize]
    public void Init()
    {
        _temp = Path.Combine(Path.GetTempPath(), "tessera-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_temp);
    }

    [TestCleanup]
    public void Cleanup() => Directory.Delete(_temp, recursive: true);

    private static string Corpus => HostileCorpus.Root;
    private static string DefaultModel => ModelPackage.DefaultDirectory();

    private static List<JsonElement> Cases(string kind) => HostileCorpus.Cases(kind);

    private static void AssertOneLine(Exception e, string expected, string what)
    {
        StringAssert.Contains(e.Message, expected, what);
        Assert.IsFalse(e.Message.Contains('\n'), $"{what}: one line: {e.Message}");
    }

    /// <summary>A package folder around a corpus manifest (placeholder ONNX files, the shipped tokenizer and placement table).</summary>
    private string MakePackage(JsonElement c)
    {
        var name = Path.GetFileNameWithoutExtension(c.GetProperty("file").GetString()!);
        var dir = Path.Combine(_temp, "pkg-" + name);
        Directory.CreateDirectory(dir);
        File.Copy(Path.Combine(Corpus, "manifests", c.GetProperty("file").GetString()!), Path.Combine(dir, "manifest.json"));
        foreach (var f in new[] { "tokenizer.json", "placement.json" }) File.Copy(Path.Combine(DefaultModel, f), Path.Combine(dir, f));
        foreach (var f in new[] { "ar.onnx", "decoder.onnx", "vq.onnx" }) File.WriteAllBytes(Path.Combine(dir, f), "not an onnx graph"u8.ToArray());
        if (c.TryGetProperty("setup", out var setup))
        {
            if (setup.TryGetProperty("symlink", out var links))
                foreach (var link in links.EnumerateObject())
                {
                    var at = Path.Combine(dir, link.Name);
                    if (File.Exists(at)) File.Delete(at);
                    File.CreateSymbolicLink(at, link.Value.GetString()!);
                }
            if (setup.TryGetProperty("fifo", out var fifo))
            {
                var at = Path.Combine(dir, fifo.GetString()!);
                File.Delete(at);
                using var mk = Process.Start("mkfifo", at);
                mk.WaitForExit();
            }
            if (setup.TryGetProperty("folder", out var folder)) Directory.CreateDirectory(Path.Combine(dir, folder.GetString()!));
        }
        return dir;
    }

    private static EngineOptions CpuOnly(string cache)
    {
        var o = new EngineOptions { UseDefaultPluginDirectory = false, UseEnvironmentPluginPath = false, CacheDirectory = cache };
        o.PluginDirectories.Add(Path.Combine(AppContext.BaseDirectory, "fixtures", "cpu"));
        return o;
    }

    [TestMethod]
    public void EveryCorpusManifestIsAModelLoadExceptionFromOpenOrCompile()
    {
        using var engine = new TesseraEngine(CpuOnly(Path.Combine(_temp, "cache")));
        foreach (var c in Cases("manifests"))
        {
            var what = c.GetProperty("file").GetString()!;
            var dir = MakePackage(c);
            // On a thread with a hang guard: a FIFO read would block for ever (the expected reason says it was refused unread).
            var open = Task.Run(() => Assert.ThrowsExactly<ModelLoadException>(() =>
            {
                var package = ModelPackage.Open(dir);
                using var generator = new ImageGenerator(engine, package, "cpu:0", "cpu:0");
            }, what));
            Assert.IsTrue(open.Wait(TimeSpan.FromSeconds(60)), $"{what}: opening the package did not end (it waits on the file?)");
            AssertOneLine(open.Result, c.GetProperty("contains").GetString()!, what);
        }
    }

    [TestMethod]
    public void EveryCorpusImageAndTheBombAreInvalidDataBeforeDecoding()
    {
        foreach (var c in Cases("images"))
        {
            var file = Path.Combine(Corpus, "images", c.GetProperty("file").GetString()!);
            AssertOneLine(Assert.ThrowsExactly<InvalidDataException>(() => ImageFiles.ReadRgb(file, 64)), c.GetProperty("contains").GetString()!, file);
        }
        var bomb = BombPng.Bytes(10000, 10000);
        long before = GC.GetTotalAllocatedBytes(precise: true);
        var e = Assert.ThrowsExactly<InvalidDataException>(() => ImageFiles.DecodeRgb(bomb, "'image'", 64));
        long allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
        AssertOneLine(e, "10000x10000 pixels; the limit is 4096 pixels per side", "bomb");
        Assert.IsTrue(allocated < 16 << 20, $"refusing the bomb allocated {allocated >> 20} MB of managed memory");
        // A limit the caller chooses is honoured too.
        var small = ImageFiles.EncodePng(new byte[32 * 32 * 3], 32, 32);
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => ImageFiles.DecodeRgb(small, "'image'", 64, new ImageLimits(MaxSide: 16))).Message, "the limit is 16 pixels per side");
        Assert.AreEqual(64 * 64 * 3, ImageFiles.DecodeRgb(small, "'image'", 64).Rgb.Length, "an image within the limits still decodes");
    }

    [TestMethod]
    public void EveryCorpusConfigFailsInTheConfigLoaderOrTheEngineWithTheReason()
    {
        foreach (var c in Cases("configs"))
        {
            var file = Path.Combine(Corpus, "configs", c.GetProperty("file").GetString()!);
            var e = Assert.Throws<Exception>(() =>
            {
                var o = EngineConfigFile.Load(file);
                o.UseDefaultPluginDirectory = false;
                o.UseEnvironmentPluginPath = false;
                o.PluginDirectories.Add(Path.Combine(AppContext.BaseDirectory, "fixtures", "cpu"));
                o.CacheDirectory ??= Path.Combine(_temp, "cache");
                using var engine = new TesseraEngine(o);
                foreach (var (stage, device) in o.Placement) engine.Devices.Place(device, o.Fallback);
                engine.Devices.Get("auto");
            }, file);
            Assert.IsTrue(e is InvalidDataException or TesseraException or ArgumentException or FileNotFoundException, $"{file}: {e.GetType().Name}: {e.Message}");
            AssertOneLine(e, c.GetProperty("contains").GetString()!, file);
        }
    }

    [TestMethod]
    public void EveryCorpusOnnxFileIsAModelLoadExceptionFromCompile()
    {
        using var engine = new TesseraEngine(CpuOnly(Path.Combine(_temp, "cache")));
        foreach (var c in Cases("onnx"))
        {
            var file = Path.Combine(Corpus, "onnx", c.GetProperty("file").GetString()!);
            var e = Assert.ThrowsExactly<ModelLoadException>(() => { using var _ = engine.Compile(ModelSource.FromFile(file), "cpu:0"); }, file);
            StringAssert.Contains(e.Message, file);
        }
    }

    [TestMethod]
    public async Task TheCApiRefusesTheSameParametersAsTheServerAndTheCliBeforeQueuing()
    {
        var o = CpuOnly(Path.Combine(_temp, "cache"));
        using var engine = new TesseraEngine(o);
        var package = ModelPackage.Open(DefaultModel);
        using var generator = new ImageGenerator(engine, package, "cpu:0", "cpu:0");
        using var batching = new BatchingGenerator(generator, new BatchingOptions { QueueCapacity = 1 });
        const string prompt = "the word \"SUN\" in red on a yellow background";
        var bad = new (GenerationRequest Request, string Parameter)[]
        {
            (new GenerationRequest(prompt) { Cfg = double.NaN }, "cfg"),
            (new GenerationRequest(prompt) { Cfg = 1e308 }, "cfg"),
            (new GenerationRequest(prompt) { Cfg = -1 }, "cfg"),
            (new GenerationRequest(prompt) { Temperature = -1 }, "temperature"),
            (new GenerationRequest(prompt) { Temperature = double.PositiveInfinity }, "temperature"),
            (new GenerationRequest(prompt) { Steps = 0 }, "steps"),
            (new GenerationRequest(prompt) { Steps = int.MaxValue }, "steps"),
            (new GenerationRequest(prompt) { TopK = -1 }, "top_k"),
            (new GenerationRequest(prompt) { TopP = double.NaN }, "top_p"),
            (new GenerationRequest(prompt) { SourceRgb = new byte[10] }, "image"),
            (new GenerationRequest("the word \"SUN\" \ud800"), "prompt"),
        };
        foreach (var (request, parameter) in bad)
        {
            var direct = Assert.ThrowsExactly<GenerationParameterException>(() => generator.Generate(request));
            Assert.AreEqual(parameter, direct.Parameter, direct.Message);
            var queued = Assert.ThrowsExactly<GenerationParameterException>(() => batching.GenerateAsync(request));
            Assert.AreEqual(parameter, queued.Parameter);
        }
        Assert.AreEqual(0, batching.Metrics.QueueDepth, "no refused request took a queue slot");
        StringAssert.Contains(Assert.ThrowsExactly<GenerationParameterException>(() => GenerationLimits.ValidateCount(ulong.MaxValue, 4)).Message, "below 2^64");
        GenerationLimits.ValidateCount(ulong.MaxValue - 3, 4); // the largest seed that fits
        var ok = await batching.GenerateAsync(new GenerationRequest(prompt) { Seed = 3, Steps = 2 });
        CollectionAssert.AreEqual(generator.Generate(new GenerationRequest(prompt) { Seed = 3, Steps = 2 }).Png, ok.Png, "valid requests are unchanged");
    }

    [TestMethod]
    public void ATensorTooLargeToAllocateIsAnArgumentExceptionBeforeAllocating()
    {
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => HostTensor.Zeros(TensorElementType.Float32, 2147483648, 1)).Message, "holds 2147483648 elements");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => HostTensor.Zeros(TensorElementType.Float32, long.MaxValue, 4)).Message, "more elements than a 64-bit count holds");
    }
}
