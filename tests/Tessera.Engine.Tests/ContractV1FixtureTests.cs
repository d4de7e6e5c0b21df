using System.Diagnostics;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Tessera.Engine.Tests;

/// <summary>
/// Contract evolution, checked at run time: a plugin compiled against contract 1.0 as it was frozen on 2026-12-02
/// (tests/fixtures/Fixture.ContractV1, with a frozen copy of the ONNX Runtime backend) loads and passes verify against
/// today's host. The frozen sources are hashed so nobody refreshes them by accident (that would hide a break).
/// </summary>
[TestClass]
public sealed class ContractV1FixtureTests
{
    private static string Hash(string dir)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var f in Directory.GetFiles(dir).Select(Path.GetFileName).Order(StringComparer.Ordinal))
        {
            sha.AppendData(Encoding.UTF8.GetBytes(f + "\n"));
            sha.AppendData(File.ReadAllBytes(Path.Combine(dir, f!)));
        }
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    [TestMethod]
    public void TheFrozenContractAndBackendAreUnchanged()
    {
        var fixtures = Path.Combine(TestPaths.RepoRoot, "tests", "fixtures");
        Assert.AreEqual("65fb58ca9a5165c362899df0525d29574016d0342176b5afb49091a02a0a0caf", Hash(Path.Combine(fixtures, "Fixture.ContractV1", "frozen")),
            "tests/fixtures/Fixture.ContractV1/frozen is contract 1.0 as vendors compiled against it; never edit it (change the live contract instead)");
        Assert.AreEqual("0ac802a777187db7097e38318943b5441b241912f53a58a8be08ffee07b277b2", Hash(Path.Combine(fixtures, "Fixture.ContractV1Plugin", "frozen-backend")),
            "tests/fixtures/Fixture.ContractV1Plugin/frozen-backend is the backend as a 1.0 plugin shipped it; never edit it");
    }

    [TestMethod]
    public void APluginBuiltAgainstContract10ReferencesItAndPassesVerifyOnTodaysHost()
    {
        var dll = Path.Combine(TestPaths.Fixture("contract-v1"), "Fixture.ContractV1Plugin.dll");
        using (var pe = new PEReader(File.OpenRead(dll)))
        {
            var md = pe.GetMetadataReader();
            var contract = md.AssemblyReferences.Select(md.GetAssemblyReference).Single(r => md.GetString(r.Name) == "Tessera.Abstractions");
            Assert.AreEqual(new Version(1, 0, 0, 0), contract.Version);
        }
        Assert.IsFalse(File.Exists(Path.Combine(TestPaths.Fixture("contract-v1"), "Tessera.Abstractions.dll")), "the contract is shared by the host, not shipped with the plugin");

        var cache = TestPaths.NewTempDir();
        try
        {
            var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in new[] { TestPaths.CliDll, "plugin", "verify", TestPaths.Fixture("contract-v1"), "--no-models", "--json" }) psi.ArgumentList.Add(a);
            psi.Environment["TESSERA_CACHE_DIR"] = cache;
            psi.Environment.Remove("TESSERA_PLUGIN_PATH");
            using var p = Process.Start(psi)!;
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            if (!p.WaitForExit(120_000)) { p.Kill(entireProcessTree: true); Assert.Fail("verify did not finish within 2 minutes"); }
            Assert.AreEqual(0, p.ExitCode, stdout.Result + stderr.Result);
            using var doc = JsonDocument.Parse(stdout.Result);
            Assert.AreEqual("pass", doc.RootElement.GetProperty("result").GetString());
            var plugin = doc.RootElement.GetProperty("plugins").EnumerateArray().Single();
            Assert.AreEqual("contract-v1", plugin.GetProperty("name").GetString());
            Assert.AreEqual("1.0", plugin.GetProperty("contract").GetString());
            var cases = doc.RootElement.GetProperty("cases").EnumerateArray().Select(c => c.GetProperty("case").GetString()).ToList();
            CollectionAssert.Contains(cases, "contract.strict-refuses");
            CollectionAssert.Contains(cases, "op.softmax");
        }
        finally
        {
            Directory.Delete(cache, recursive: true);
        }
    }
}
