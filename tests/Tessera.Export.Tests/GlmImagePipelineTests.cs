using System.Text.Json.Nodes;
using Tessera.Pipeline.GlmImage;

namespace Tessera.Export.Tests;

/// <summary>
/// A GLM-Image package runs end to end through the plugins: test snapshot → `tessera import glm-image` →
/// `tessera generate --model <package>`, and the pieces of the official pipeline it follows.
/// </summary>
[TestClass]
public sealed class GlmImagePipelineTests
{
    private static string? _package;
    private static string _root = "";

    [ClassInitialize]
    public static void ImportOnce(TestContext _)
    {
        _root = TestSupport.NewTempDir();
        var snapshot = Path.Combine(_root, "snapshot");
        _package = Path.Combine(_root, "package");
        var (code, stdout, stderr) = TestSupport.Tessera("import", "glm-image", "--write-test-snapshot", snapshot, "--seed", "5");
        Assert.AreEqual(0, code, stdout + stderr);
        (code, stdout, stderr) = TestSupport.Tessera("import", "glm-image", snapshot, "--out", _package);
        Assert.AreEqual(0, code, stdout + stderr);
    }

    [ClassCleanup]
    public static void Cleanup() => Directory.Delete(_root, recursive: true);

    private static (int Code, string Out, string Err) Generate(string output, params string[] extra) =>
        TestSupport.Tessera(["generate", "a sign that says \"OPEN\" and 'EXIT'", "--model", _package!, "--width", "64", "--height", "96", "--steps", "3", "-o", output, .. extra]);

    [TestMethod]
    public void TheImportedPackageGeneratesAPngAndTheSameSeedGivesTheSameBytes()
    {
        var a = Path.Combine(_root, "a.png");
        var b = Path.Combine(_root, "b.png");
        var c = Path.Combine(_root, "c.png");
        var (code, stdout, stderr) = Generate(a);
        Assert.AreEqual(0, code, stdout + stderr);
        StringAssert.Contains(stdout, "64x96");
        Assert.AreEqual(0, Generate(b).Code);
        Assert.AreEqual(0, Generate(c, "--seed", "1").Code);
        var bytes = File.ReadAllBytes(a);
        CollectionAssert.AreEqual(bytes, File.ReadAllBytes(b), "same seed, same bytes");
        CollectionAssert.AreNotEqual(bytes, File.ReadAllBytes(c), "another seed, another image");
        CollectionAssert.AreEqual(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, bytes[..4]);
        // IHDR: width and height, big-endian, at bytes 16..23.
        Assert.AreEqual(64, System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(16)));
        Assert.AreEqual(96, System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(20)));
    }

    [TestMethod]
    public void TheArAndTheDitRunOnDifferentDevicesWithTheSameBytes()
    {
        var config = Path.Combine(_root, "two-devices.json");
        File.WriteAllText(config, new JsonObject { ["plugins"] = new JsonObject { ["cpu"] = new JsonObject { ["devices"] = 2 } } }.ToJsonString());
        var one = Path.Combine(_root, "one.png");
        var two = Path.Combine(_root, "two.png");
        Assert.AreEqual(0, Generate(one).Code);
        var (code, stdout, stderr) = Generate(two, "--config", config, "--ar-device", "cpu:0", "--decoder-device", "cpu:1");
        Assert.AreEqual(0, code, stdout + stderr);
        StringAssert.Contains(stderr, "AR on cpu:0, DiT, glyph encoder and VAE on cpu:1");
        CollectionAssert.AreEqual(File.ReadAllBytes(one), File.ReadAllBytes(two));
    }

    [TestMethod]
    public void SizesThatAreNotMultiplesOf32AreRefusedInOneLine()
    {
        var (code, _, stderr) = TestSupport.Tessera("generate", "x", "--model", _package!, "--width", "100", "--height", "64", "-o", Path.Combine(_root, "bad.png"));
        Assert.AreNotEqual(0, code);
        StringAssert.Contains(stderr, "multiples of 32");
        Assert.AreEqual(1, stderr.Trim().Split('\n').Length, stderr);
    }

    [TestMethod]
    public void GridsAndPositionsFollowTheOfficialProcessor()
    {
        // 1024² → target 32×32, preview 16×16; 1152×768 (H×W) → target 36×24, preview 19×13.
        Assert.AreEqual((32, 32, 16, 16), GlmImageGenerator.Grids(1024, 1024));
        Assert.AreEqual((36, 24, 19, 13), GlmImageGenerator.Grids(768, 1152));
        // The processor's worked example: a prefill of 5, a 3×2 preview at t = 5, then the 3×3 target at t = 8.
        var p = GlmImageGenerator.GridPositions(5, 3, 3, 3, 2);
        Assert.AreEqual(6 + 9, p.Length);
        CollectionAssert.AreEqual(new long[] { 5, 5, 5 }, p[0]);
        CollectionAssert.AreEqual(new long[] { 5, 6, 6 }, p[3]);   // preview token 3: row 1, column 1
        CollectionAssert.AreEqual(new long[] { 8, 8, 8 }, p[6]);
        CollectionAssert.AreEqual(new long[] { 8, 10, 10 }, p[14]); // target token 8: row 2, column 2
    }

    [TestMethod]
    public void TheScheduleShiftsWithTheImageSizeAsTheOfficialConfigSays()
    {
        var settings = new GlmImageSchedulerSettings(1000, true, 0.25, 0.75, 256, "linear", 1.0);
        var s = GlmImageSchedule.Create(50, 4096, settings); // 1024²: 128×128 latents / 4
        double mu = Math.Sqrt(4096.0 / 256) * 0.75 + 0.25;  // 3.25
        Assert.AreEqual(1.0, s.Sigmas[0], 1e-12);
        Assert.AreEqual(999.0, s.DitTimesteps[0], 1e-9, "the DiT is given the scheduler's timestep minus 1");
        double sigma1 = Math.Truncate(1000 - 999.0 / 50) / 1000;  // linspace(1000, 1, 51)[1] = 980.02 → 980
        Assert.AreEqual(mu / (mu + (1 / sigma1 - 1)), s.Sigmas[1], 1e-12);
        Assert.AreEqual(0.0, s.Sigmas[^1]);
        for (int i = 0; i < 50; i++) Assert.IsTrue(s.Sigmas[i] > s.Sigmas[i + 1]);
    }

    [TestMethod]
    public void TheHuggingFaceTokenizerJsonLoadsAsByteLevelBpeWithItsSpecialTokens()
    {
        var t = HfBpeTokenizer.Load(Path.Combine(_package!, "processor", "tokenizer.json"));
        Assert.AreEqual(16384, t.Special("<|dit_token_16384|>"));
        var ids = t.Encode("Hi é");
        // One id per byte in this merge-free test vocabulary: H, i, space, and é's two UTF-8 bytes.
        Assert.AreEqual(5, ids.Count, string.Join(",", ids));
        Assert.IsTrue(ids.All(i => i >= 16512), "text ids follow the vision vocabulary");
        Assert.ThrowsExactly<InvalidDataException>(() => t.Special("<nope>"));
    }
}
