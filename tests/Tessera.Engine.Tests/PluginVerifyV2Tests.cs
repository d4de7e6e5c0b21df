using System.Diagnostics;
using System.Text.Json;

namespace Tessera.Engine.Tests;

/// <summary>
/// verify v2 can fail where it matters: a plugin that says yes to everything, a plugin that ignores strict; it honours
/// --fallback and the config's fallback (the host's partitioning is what gets verified under allow); the CPU passes.
/// </summary>
[TestClass]
public sealed class PluginVerifyV2Tests
{
    private string _temp = "";

    [TestInitialize]
    public void Init() => _temp = TestPaths.NewTempDir();

    [TestCleanup]
    public void Cleanup() => Directory.Delete(_temp, recursive: true);

    private (int Code, string Out, string Err) Tessera(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(TestPaths.CliDll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["TESSERA_CACHE_DIR"] = Path.Combine(_temp, "cache");
        psi.Environment.Remove("TESSERA_PLUGIN_PATH");
        psi.Environment.Remove("TESSERA_MODEL");
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(180_000)) { p.Kill(entireProcessTree: true); Assert.Fail("tessera did not finish within 3 minutes"); }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    private string Config(string json)
    {
        var path = Path.Combine(_temp, $"config-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, json);
        return path;
    }

    private static Dictionary<string, string> Statuses(string json)
    {
        using var doc = JsonDocument.Parse(json);
        return doc.RootElement.GetProperty("cases").EnumerateArray()
            .ToDictionary(c => c.GetProperty("case").GetString()!, c => c.GetProperty("status").GetString() + ": " + c.GetProperty("detail").GetString());
    }

    [TestMethod]
    public void VerifyFailsAPluginThatSaysYesToEverythingNamingTheCase()
    {
        var config = Config("""{ "plugins": { "subset-npu": { "mode": "yes-to-everything" } } }""");
        var (code, stdout, stderr) = Tessera("plugin", "verify", TestPaths.Fixture("subset-npu"), "--no-models", "--config", config);
        Assert.AreEqual(1, code, stdout + stderr);
        StringAssert.Contains(stdout, "npu:0 contract.unsupported-reported");
        StringAssert.Contains(stdout, "CheckSupport says a graph with tessera.conformance.NoSuchOp 'conformance_unknown_op' can run");
        StringAssert.Matches(stdout, new System.Text.RegularExpressions.Regex(@"FAIL: 1 case\(s\) failed \(npu:0 contract\.unsupported-reported\)"));
    }

    [TestMethod]
    public void VerifyFailsAPluginThatIgnoresStrictNamingTheGraphAndNode()
    {
        var config = Config("""{ "plugins": { "subset-npu": { "mode": "ignore-strict" } } }""");
        var (code, stdout, stderr) = Tessera("plugin", "verify", TestPaths.Fixture("subset-npu"), "--no-models", "--config", config, "--json");
        Assert.AreEqual(1, code, stdout + stderr);
        var cases = Statuses(stdout);
        StringAssert.StartsWith(cases["contract.strict-refuses"], "fail: compiled 'op.");
        StringAssert.Contains(cases["contract.strict-refuses"], "under strict although its CheckSupport says");
        Assert.AreEqual(1, cases.Values.Count(v => v.StartsWith("fail")), string.Join("\n", cases));
    }

    [TestMethod]
    public void VerifyUnderStrictFailsTheSubsetNpusRefusedOpsAndUnderAllowPassesThroughTheHostsPartitioning()
    {
        var (code, stdout, _) = Tessera("plugin", "verify", TestPaths.Fixture("subset-npu"), "--no-models", "--json");
        Assert.AreEqual(1, code, stdout);
        var strict = Statuses(stdout);
        StringAssert.StartsWith(strict["op.softmax"], "fail: FallbackNotAllowedException");
        StringAssert.Contains(strict["op.softmax"], "Softmax '");
        Assert.IsTrue(strict.Where(c => c.Key.StartsWith("contract.")).All(c => c.Value.StartsWith("pass")), string.Join("\n", strict));

        // The config's fallback is honoured, and --fallback over it.
        var allowConfig = Config("""{ "fallback": "allow" }""");
        (code, stdout, var stderr) = Tessera("plugin", "verify", TestPaths.Fixture("subset-npu"), "--no-models", "--config", allowConfig);
        Assert.AreEqual(0, code, stdout + stderr);
        StringAssert.Contains(stdout, "fallback allow");
        StringAssert.Contains(stdout, "not verified");
        StringAssert.Contains(stdout, "op.softmax");
        Assert.IsFalse(stdout.Contains("  cpu:0 ("), "the CPU that takes the refused nodes is not itself verified:\n" + stdout);

        (code, stdout, _) = Tessera("plugin", "verify", TestPaths.Fixture("subset-npu"), "--no-models", "--config", allowConfig, "--fallback", "strict");
        Assert.AreEqual(1, code, stdout);
    }

    [TestMethod]
    public void VerifyPassesTheCpuPluginsBehaviourChecksAndChecksAnUnavailableDevice()
    {
        var cpu = Path.Combine(Path.GetDirectoryName(TestPaths.CliDll)!, "plugins", "cpu");
        var (code, stdout, stderr) = Tessera("plugin", "verify", cpu, "--no-models", "--json");
        Assert.AreEqual(0, code, stdout + stderr);
        var cases = Statuses(stdout);
        foreach (var c in new[] { "contract.unsupported-reported", "contract.strict-refuses", "contract.bad-shape", "contract.unknown-output",
                                  "contract.device-tensor-feedback", "contract.concurrent-runs", "contract.use-after-dispose", "contract.external-data" })
            StringAssert.StartsWith(cases[c], "pass", c);

        (code, stdout, _) = Tessera("plugin", "verify", TestPaths.Fixture("echo"), "--no-models", "--json");
        Assert.AreEqual(0, code, stdout);
        using var doc = JsonDocument.Parse(stdout);
        var unavailable = doc.RootElement.GetProperty("cases").EnumerateArray().Single(c => c.GetProperty("device").GetString() == "fixture:1" && c.GetProperty("case").GetString() == "contract.unavailable-throws");
        Assert.AreEqual("pass", unavailable.GetProperty("status").GetString(), unavailable.GetRawText());
    }
}
