using System.Diagnostics;

namespace Tessera.Cluster.Tests;

/// <summary>
/// What an operator sees for the usual first mistakes with the cluster commands: one line on stderr that names the
/// option or the server and says what to do, a non-zero exit, no stack trace, and no waiting for Orleans' retries.
/// </summary>
[TestClass]
public sealed class BadInputTests
{
    private static readonly string Dir = Path.GetTempPath();

    /// <summary>Runs tessera, checks the one-line error and the exit code, and returns the line.</summary>
    private static string OneLineError(string args, int exit, TimeSpan within, IReadOnlyDictionary<string, string?>? environment = null)
    {
        var watch = Stopwatch.StartNew();
        var (code, stdout, stderr) = ClusterProcesses.Cli(args, Dir, within + TimeSpan.FromSeconds(30), environment);
        watch.Stop();
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.AreEqual(1, lines.Length, $"tessera {args}: stderr is not one line:\n{stderr}");
        StringAssert.StartsWith(lines[0], "error: ", $"tessera {args}");
        Assert.IsFalse(stderr.Contains("   at ", StringComparison.Ordinal) || stderr.Contains("Exception", StringComparison.Ordinal), $"tessera {args}: a stack trace or exception name:\n{stderr}");
        Assert.AreEqual(exit, code, $"tessera {args}: {stderr}");
        Assert.IsFalse(stdout.Contains("node ready", StringComparison.Ordinal) || stdout.Contains("listening on", StringComparison.Ordinal), $"tessera {args} started anyway:\n{stdout}");
        Assert.IsTrue(watch.Elapsed < within, $"tessera {args} took {watch.Elapsed.TotalSeconds:F1} s to fail; it must fail at once, not after retries");
        return lines[0];
    }

    [TestMethod]
    [DataRow("node --cluster redis:/127.0.0.1:6379")]
    [DataRow("node --cluster 127.0.0.1:6379")]
    [DataRow("node --cluster redis://127.0.0.1")]
    [DataRow("cluster status --cluster http://127.0.0.1:6379")]
    [DataRow("serve --cluster redis//127.0.0.1:6379 --port 0")]
    public void AConnectionStringThatIsNotOneIsNamedWithTheTwoForms(string args)
    {
        var line = OneLineError(args, exit: 2, within: TimeSpan.FromSeconds(20));
        StringAssert.Contains(line, "--cluster '");
        StringAssert.Contains(line, "redis://host:port");
        StringAssert.Contains(line, "localhost");
    }

    [TestMethod]
    [DataRow("node")]
    [DataRow("cluster status")]
    [DataRow("serve --port 0")]
    public void AnUnreachableRedisIsNamedWithItsAddressQuickly(string command)
    {
        var port = ClusterProcesses.FreePort(); // nothing listens there
        var line = OneLineError($"{command} --cluster redis://127.0.0.1:{port}", exit: 1, within: TimeSpan.FromSeconds(20));
        StringAssert.Contains(line, $"Redis at 127.0.0.1:{port}");
        StringAssert.Contains(line, "start redis-server");
    }

    [TestMethod]
    [DataRow("ar,gpu", "'gpu'")]
    [DataRow("dit", "'dit'")]
    [DataRow(",", "--stages is empty")]
    public void ABadStagesValueNamesTheStagesThereAre(string stages, string named)
    {
        var line = OneLineError($"node --cluster localhost --stages {stages}", exit: 2, within: TimeSpan.FromSeconds(20));
        StringAssert.Contains(line, "--stages");
        StringAssert.Contains(line, named);
        StringAssert.Contains(line, "ar");
        StringAssert.Contains(line, "decoder");
    }

    [TestMethod]
    public void ClusterStatusWithRedisUpButNoNodeSaysHowToStartOne()
    {
        using var c = new ClusterProcesses();
        var line = OneLineError($"cluster status --cluster {c.Connection}", exit: 1, within: TimeSpan.FromSeconds(40));
        StringAssert.Contains(line, $"tessera node --cluster {c.Connection}");
    }
}
