using System.Diagnostics;

namespace Tessera.Engine.Tests;

/// <summary>Commands leave nothing in the folder the user runs them from.</summary>
[TestClass]
public sealed class WorkingDirectoryHygieneTests
{
    [TestMethod]
    public void PlacementProbingWritesNoProfileFileIntoTheCurrentDirectory()
    {
        var cwd = TestPaths.NewTempDir();
        try
        {
            var model = Path.Combine(TestPaths.RepoRoot, "models", "default", "decoder.onnx");
            var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = cwd };
            foreach (var a in new[] { TestPaths.CliDll, "run", model, "--device", "cpu:0", "--placement", "--iterations", "1" }) psi.ArgumentList.Add(a);
            psi.Environment["TESSERA_CACHE_DIR"] = Path.Combine(Path.GetTempPath(), "tessera-tests", "hygiene-cache-" + Guid.NewGuid().ToString("N"));
            using var p = Process.Start(psi)!;
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            Assert.IsTrue(p.WaitForExit(60_000), "tessera finished within a minute");
            Assert.AreEqual(0, p.ExitCode, stdout.Result + stderr.Result);
            StringAssert.Contains(stdout.Result, "placement", "the placement report ran");
            CollectionAssert.AreEqual(Array.Empty<string>(), Directory.GetFileSystemEntries(cwd).Select(Path.GetFileName).ToArray(), "nothing written where the command ran");
            Directory.Delete(psi.Environment["TESSERA_CACHE_DIR"]!, recursive: true);
        }
        finally
        {
            Directory.Delete(cwd, recursive: true);
        }
    }
}
