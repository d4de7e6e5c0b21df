using System.Text.Json;
using Tessera.TestSupport;

namespace Tessera.Training.Tests;

/// <summary>
/// <c>scripts/train-default.sh</c> from a fresh clone, as a newcomer runs it: every stage of the recipe (VQ, AR and
/// decoder side by side, the two glyph fine-tunes, packaging with parity from the trained runs, the OCR evaluation),
/// each stopped after a few steps, then <c>tessera generate</c> on the package it made. Slow (a full build in the
/// clone plus tokenizing the AR's dataset): <c>scripts/test.sh --slow</c>.
/// </summary>
/// <remarks>The clone is of the repository's committed HEAD: uncommitted changes are not in it.</remarks>
[TestClass]
public sealed class TrainDefaultScriptTests
{
    [TestMethod]
    [TestCategory("Slow")]
    [Timeout(3_600_000)]
    public void TheDefaultRecipeRunsFromAFreshCloneAndItsPackageGenerates()
    {
        var temp = TestPaths.NewTempDir();
        try
        {
            var clone = Path.Combine(temp, "clone");
            Run(temp, TimeSpan.FromMinutes(5), "git", "clone", "--quiet", "--no-hardlinks", TestPaths.RepoRoot, clone);
            Assert.IsFalse(Directory.Exists(Path.Combine(clone, "runs")), "a fresh clone has no runs folder");

            var package = Path.Combine(temp, "package");
            var log = Run(clone, TimeSpan.FromMinutes(50), "bash", "scripts/train-default.sh", "--stop-after", "2", "--eval-n", "4", package);

            foreach (var stage in new[] { "vq", "ar", "decoder", "decoder-glyph", "decoder-glyph-2" })
                Assert.IsTrue(Directory.EnumerateFiles(Path.Combine(clone, "runs", stage, "checkpoints")).Any(), $"no checkpoint in runs/{stage}\n{log}");
            using (var manifest = JsonDocument.Parse(File.ReadAllText(Path.Combine(package, "manifest.json"))))
                Assert.IsTrue(manifest.RootElement.TryGetProperty("ar", out _), "the package has an AR stage");
            StringAssert.Contains(File.ReadAllText(Path.Combine(package, "eval.txt")), "seen", "the OCR evaluation wrote its table");
            Assert.IsTrue(File.Exists(Path.Combine(package, "eval-sheet.png")), "the evaluation's contact sheet");

            var png = Path.Combine(temp, "out.png");
            Run(clone, TimeSpan.FromMinutes(5), Path.Combine(clone, "tessera"), "generate", "the word \"SMOKE\" in red on a white background", "--model", package, "--seed", "1", "-o", png);
            var head = File.ReadAllBytes(png).Take(8).ToArray();
            CollectionAssert.AreEqual(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }, head, "tessera generate wrote a PNG from the recipe's package");
        }
        finally
        {
            Directory.Delete(temp, recursive: true);
        }
    }

    /// <summary>Runs a command to the end; fails with the end of its output on a non-zero exit or past <paramref name="limit"/>.</summary>
    private static string Run(string workDir, TimeSpan limit, string file, params string[] args)
    {
        var o = TestProcess.Run(file, args, limit, workDir);
        Assert.IsFalse(o.TimedOut, $"{file} {string.Join(' ', args)} did not finish within {limit.TotalMinutes} min:\n{o.Tail()}");
        Assert.AreEqual(0, o.Code, $"{file} {string.Join(' ', args)} failed:\n{o.Tail()}");
        return $"{o.Out}\n{o.Err}";
    }
}
