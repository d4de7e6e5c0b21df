using Tessera.Engine;
using Tessera.Pipeline;
using Tessera.Pipeline.Sampling;

namespace Tessera.Pipeline.Tests;

/// <summary>The samplers and the CFG choice through the shipped model's real decoder on the CPU plugin.</summary>
[TestClass]
public sealed class DecoderSamplerPipelineTests
{
    private const string Prompt = "the word \"MOON\" in red on a yellow background";

    private static string _dir = "";

    [ClassInitialize]
    public static void Init(TestContext _) => _dir = Path.Combine(Path.GetTempPath(), "tessera-tests", "sampler-" + Guid.NewGuid().ToString("N"));

    [ClassCleanup]
    public static void Cleanup() { if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true); }

    private static TesseraEngine Engine()
    {
        var o = new EngineOptions { UseDefaultPluginDirectory = false, UseEnvironmentPluginPath = false, CacheDirectory = Path.Combine(_dir, "cache") };
        o.PluginDirectories.Add(Path.Combine(AppContext.BaseDirectory, "fixtures", "cpu"));
        return new TesseraEngine(o);
    }

    [TestMethod]
    [DataRow(FlowSamplers.Euler)]
    [DataRow(FlowSamplers.Heun)]
    [DataRow(FlowSamplers.DpmSolver2M)]
    public void EachSamplerGivesTheSameBytesForTheSameSeed(string sampler)
    {
        using var engine = Engine();
        using var generator = new ImageGenerator(engine, ModelPackage.Open(ModelPackage.DefaultDirectory()), "cpu:0", "cpu:0");
        var request = new GenerationRequest(Prompt) { Seed = 3, Steps = 3, Sampler = sampler };
        var a = generator.Generate(request);
        var b = generator.Generate(request);
        CollectionAssert.AreEqual(a.Png, b.Png);
        Assert.AreEqual(FlowSamplers.Evaluations(sampler, 3), a.Timings.DecoderSteps);
    }

    [TestMethod]
    public void SamplersDifferFromEachOtherOnTheSameSeed()
    {
        using var engine = Engine();
        using var generator = new ImageGenerator(engine, ModelPackage.Open(ModelPackage.DefaultDirectory()), "cpu:0", "cpu:0");
        var euler = generator.Generate(new GenerationRequest(Prompt) { Seed = 3, Steps = 4, Sampler = FlowSamplers.Euler });
        var dpm = generator.Generate(new GenerationRequest(Prompt) { Seed = 3, Steps = 4, Sampler = FlowSamplers.DpmSolver2M });
        CollectionAssert.AreEqual(euler.TargetTokens, dpm.TargetTokens, "the AR half does not depend on the decoder's sampler");
        CollectionAssert.AreNotEqual(euler.Rgb, dpm.Rgb, "the sampler option reached the decoder");
    }

    [TestMethod]
    public void TheCfgChoiceIsMeasuredOnceAndTakesTheBatchOnlyWhenItGivesTheSameBytes()
    {
        using var engine = Engine();
        using var generator = new ImageGenerator(engine, ModelPackage.Open(ModelPackage.DefaultDirectory()), "cpu:0", "cpu:0");
        Assert.IsNull(generator.Decoder.CfgBatching, "nothing measured before a guided step");
        generator.Generate(new GenerationRequest(Prompt) { Seed = 1, Steps = 2 });
        Assert.IsNull(generator.Decoder.CfgBatching, "an unguided request measures nothing");
        var first = generator.Generate(new GenerationRequest(Prompt) { Seed = 1, Steps = 2, Cfg = 3 });
        var choice = generator.Decoder.CfgBatching;
        Assert.IsNotNull(choice);
        Assert.IsTrue(choice.BatchedSeconds > 0 && choice.TwoPassSeconds > 0);
        if (choice.Batched) Assert.IsTrue(choice.Identical && choice.BatchedSeconds <= choice.TwoPassSeconds);
        var again = generator.Generate(new GenerationRequest(Prompt) { Seed = 1, Steps = 2, Cfg = 3 });
        Assert.AreSame(choice, generator.Decoder.CfgBatching, "measured once per decoder");
        CollectionAssert.AreEqual(first.Png, again.Png);
    }

    [TestMethod]
    public void AnUnknownSamplerIsRefusedNamingTheParameter()
    {
        using var engine = Engine();
        using var generator = new ImageGenerator(engine, ModelPackage.Open(ModelPackage.DefaultDirectory()), "cpu:0", "cpu:0");
        var e = Assert.ThrowsExactly<GenerationParameterException>(() => generator.Generate(new GenerationRequest(Prompt) { Sampler = "ddim" }));
        StringAssert.Contains(e.Message, "'sampler'");
        StringAssert.Contains(e.Message, "dpm2m");
    }
}
