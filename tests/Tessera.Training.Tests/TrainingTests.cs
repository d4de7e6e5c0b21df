using Tessera.Models.Training;
using Tessera.Models.Vq;
using static TorchSharp.torch;

namespace Tessera.Training.Tests;

[TestClass]
public sealed class TrainingTests
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

    /// <summary>A VQ small enough to train in seconds: 32x32 images, 8x8 codes, 32 codes.</summary>
    private static StageConfig Tiny(int steps = 6) => new()
    {
        Vq = new VqConfig { ImageSize = 32, Downsamples = 2, Channels = 8, CodebookSize = 32, CodeDim = 8 },
        Train = new TrainConfig { Steps = steps, BatchSize = 8, LearningRate = 3e-3, WarmupSteps = 2, CheckpointEvery = 3, Seed = 11, Threads = 1 },
    };

    private TrainingRun<ImageBatch> Run(StageConfig config, string dir, bool resume = false, long? stopAfter = null, StringWriter? log = null) =>
        VqStage.Create(config, Path.Combine(_temp, dir), new StageRunOptions(resume, log ?? new StringWriter(), StopAfterStep: stopAfter));

    [TestMethod]
    public void VqOutputShapesFollowTheConfig()
    {
        foreach (var (cfg, grid) in new[] { (new VqConfig(), 8), (new VqConfig { ImageSize = 32, Downsamples = 2, CodebookSize = 64, CodeDim = 16 }, 8) })
        {
            using var scope = NewDisposeScope();
            var vq = new VqTokenizer(cfg);
            var x = rand(2, 3, cfg.ImageSize, cfg.ImageSize) * 2 - 1;
            var codes = vq.Tokenize(x);
            CollectionAssert.AreEqual(new long[] { 2, grid, grid }, codes.shape);
            Assert.IsTrue(codes.max().item<long>() < cfg.CodebookSize);
            CollectionAssert.AreEqual(new long[] { 2, 3, cfg.ImageSize, cfg.ImageSize }, vq.Detokenize(codes).shape);
            CollectionAssert.AreEqual(x.shape, vq.forward(x).shape);
        }
    }

    [TestMethod]
    public void ATinyVqTrainsAndItsLossDrops()
    {
        var run = Run(Tiny() with { Train = Tiny().Train with { Steps = 60, CheckpointEvery = 60 } }, "drop");
        run.Run();
        double first = run.Losses.Take(3).Average(p => p.Value), last = run.Losses.TakeLast(3).Average(p => p.Value);
        Assert.IsTrue(last < first * 0.8, $"loss went from {first:F4} to {last:F4}");
        Assert.IsTrue(File.Exists(Path.Combine(_temp, "drop", "loss.csv")));
        Assert.IsTrue(File.Exists(Path.Combine(_temp, "drop", "loss.png")));
        Assert.AreEqual(61, File.ReadAllLines(Path.Combine(_temp, "drop", "loss.csv")).Length, "a header and one row per step");
    }

    [TestMethod]
    public void KillAndResumeGivesTheSameNextStepLossesAsAnUninterruptedRun()
    {
        var straight = Run(Tiny(), "straight");
        straight.Run();

        Run(Tiny(), "resumed", stopAfter: 3).Run(); // "killed" after the checkpoint at step 3
        var resumed = Run(Tiny(), "resumed", resume: true);
        var result = resumed.Run();

        Assert.AreEqual(4, result.FirstStep);
        CollectionAssert.AreEqual(new long[] { 4, 5, 6 }, resumed.Losses.Keys.ToArray());
        foreach (var step in new long[] { 4, 5, 6 })
            Assert.AreEqual(straight.Losses[step], resumed.Losses[step], 1e-7, $"step {step}");
        Assert.AreEqual(7, File.ReadAllLines(Path.Combine(_temp, "resumed", "loss.csv")).Length, "the loss log has each step once");
    }

    [TestMethod]
    public void InitFromWidensAnInputLayerSoTheNetworkStartsAsItWas()
    {
        var narrow = new StageConfig { Dit = new DitConfig { ImageSize = 16, Patch = 4, Hidden = 24, Layers = 1, Heads = 2, CodebookSize = 8, MaxGlyphs = 4 } };
        var baseModel = new Tessera.Models.Dit.DitDecoder(narrow.Dit!);
        using (no_grad()) foreach (var p in baseModel.parameters()) p.add_(randn_like(p) * 0.05f);
        var dir = Path.Combine(_temp, "base");
        var store = new CheckpointStore(Path.Combine(dir, "checkpoints"));
        store.Save(1, baseModel.named_parameters().Select(p => ($"ema.{p.name}", (Tensor)p.parameter)).ToList(),
            new System.Text.Json.Nodes.JsonObject { ["step"] = 1L, ["modelConfig"] = "{}" });

        var wide = new Tessera.Models.Dit.DitDecoder(narrow.Dit! with { GlyphImage = true });
        var log = new StringWriter();
        TrainedWeights.InitFrom(wide, dir, log);
        StringAssert.Contains(log.ToString(), "patch_embed.weight widened from 3 to 4");
        baseModel.eval(); wide.eval();
        using var _ = no_grad();
        var xt = randn(2, 3, 16, 16); var t = rand(2); var prior = randint(0, 8, [2, 4, 4]); var glyphs = randint(1, 200, [2, 4]);
        var before = baseModel.Forward(xt, t, prior, glyphs);
        var after = wide.Forward(xt, t, prior, glyphs, zeros(2, 1, 16, 16));
        Assert.IsTrue((before - after).abs().max().item<float>() < 1e-6, "with no glyph image the widened network matches the original");

        var other = new Tessera.Models.Dit.DitDecoder(narrow.Dit! with { Hidden = 32, Heads = 2 });
        Assert.ThrowsExactly<TrainingCheckpointException>(() => TrainedWeights.InitFrom(other, dir));
    }

    [TestMethod]
    public void ATruncatedCheckpointIsRefusedAndThePreviousOneIsUsed()
    {
        Run(Tiny(), "cut").Run(); // checkpoints at 3 and 6
        var newest = Path.Combine(_temp, "cut", "checkpoints", "ckpt-00000006.tsr");
        var bytes = File.ReadAllBytes(newest);
        File.WriteAllBytes(newest, bytes[..(bytes.Length / 2)]);

        var e = Assert.ThrowsExactly<TrainingCheckpointException>(() => Checkpoint.Load(newest));
        StringAssert.Contains(e.Message, newest);
        StringAssert.Contains(e.Message, "truncated or corrupt");

        var log = new StringWriter();
        var resumed = Run(Tiny(), "cut", resume: true, log: log);
        var result = resumed.Run();
        Assert.AreEqual(4, result.FirstStep, "resumed from the checkpoint at step 3");
        StringAssert.Contains(log.ToString(), newest);
        StringAssert.Contains(log.ToString(), "Falling back to the previous checkpoint");
    }

    [TestMethod]
    public void ResumingWithADifferentModelConfigIsRefused()
    {
        Run(Tiny(), "cfg", stopAfter: 3).Run();
        var other = Tiny() with { Vq = Tiny().Vq! with { CodebookSize = 64 } };
        var e = Assert.ThrowsExactly<TrainingCheckpointException>(() => Run(other, "cfg", resume: true).Run());
        StringAssert.Contains(e.Message, "different vq config");
    }
}
