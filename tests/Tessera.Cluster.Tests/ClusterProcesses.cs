using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace Tessera.Cluster.Tests;

/// <summary>
/// Real processes for a test: a redis-server on a free port in a temp folder, tessera node processes and a
/// tessera serve --cluster front. Dispose kills every one (with its children) and removes the folder.
/// </summary>
public sealed class ClusterProcesses : IDisposable
{
    public sealed class Proc(string name, Process process, StringBuilder output)
    {
        public string Name { get; } = name;
        public Process Process { get; } = process;
        public string Output { get { lock (output) return output.ToString(); } }
    }

    private readonly List<Proc> _procs = [];
    public string Dir { get; } = Directory.CreateTempSubdirectory("tessera-cluster-").FullName;
    public int RedisPort { get; }
    public string Connection => $"redis://127.0.0.1:{RedisPort}";
    public Uri? Front { get; private set; }
    public readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(120) };
    /// <summary>Short membership timeout so a killed node leaves within seconds.</summary>
    public const int MembershipTimeoutSeconds = 6;

    public static string RepoRoot
    {
        get
        {
            var d = new DirectoryInfo(AppContext.BaseDirectory);
            while (d is not null && !File.Exists(Path.Combine(d.FullName, "Engine.sln"))) d = d.Parent;
            return d?.FullName ?? throw new InvalidOperationException("Engine.sln not found above the test folder.");
        }
    }

    public static string TesseraDll
    {
        get
        {
            var config = AppContext.BaseDirectory.Contains("/bin/Debug/") ? "Debug" : "Release";
            var dll = Path.Combine(RepoRoot, "engine", "Tessera.Cli", "bin", config, "net10.0", "tessera.dll");
            if (!File.Exists(dll)) Assert.Inconclusive($"{dll} is not built; build engine/Tessera.Cli first.");
            return dll;
        }
    }

    public ClusterProcesses()
    {
        var redis = new[] { "/usr/bin/redis-server", "/usr/sbin/redis-server" }.FirstOrDefault(File.Exists)
            ?? throw new AssertFailedException("redis-server is not installed; apt-get install redis-server (CI's .ci/run does).");
        RedisPort = FreePort();
        Start("redis", redis, $"--port {RedisPort} --bind 127.0.0.1 --save \"\" --appendonly no --dir {Dir}", "Ready to accept connections");
    }

    public static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        try { return ((IPEndPoint)l.LocalEndpoint).Port; } finally { l.Stop(); }
    }

    public Proc Start(string name, string file, string args, string readyLine, TimeSpan? timeout = null)
    {
        var psi = new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = Dir };
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        var output = new StringBuilder();
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var p = new Process { StartInfo = psi, EnableRaisingEvents = true };
        void OnLine(string? line)
        {
            if (line is null) return;
            lock (output) output.AppendLine(line);
            if (line.Contains(readyLine, StringComparison.Ordinal)) ready.TrySetResult();
        }
        p.OutputDataReceived += (_, e) => OnLine(e.Data);
        p.ErrorDataReceived += (_, e) => OnLine(e.Data);
        p.Exited += (_, _) => ready.TrySetException(new AssertFailedException($"{name} exited before it was ready"));
        p.Start();
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        var proc = new Proc(name, p, output);
        lock (_procs) _procs.Add(proc);
        try { ready.Task.Wait(timeout ?? TimeSpan.FromSeconds(90)); }
        catch (Exception e) { throw new AssertFailedException($"{name} did not become ready ({e.GetBaseException().Message}). Its output:\n{proc.Output}"); }
        if (!ready.Task.IsCompletedSuccessfully) throw new AssertFailedException($"{name} did not become ready in time. Its output:\n{proc.Output}");
        return proc;
    }

    public Proc StartNode(string name, string stages) =>
        Start(name, "dotnet", $"\"{TesseraDll}\" node --cluster {Connection} --stages {stages} --name {name} --silo-port {FreePort()} --gateway-port {FreePort()} " +
            $"--membership-timeout {MembershipTimeoutSeconds}", "node ready", TimeSpan.FromSeconds(120));

    public Proc StartFront()
    {
        var port = FreePort();
        var p = Start("serve", "dotnet", $"\"{TesseraDll}\" serve --cluster {Connection} --port {port} --timeout 120", "listening on", TimeSpan.FromSeconds(120));
        Front = new Uri($"http://127.0.0.1:{port}/");
        return p;
    }

    /// <summary>Waits until the front sees this many AR and decoder nodes (its /health devices).</summary>
    public async Task WaitForNodesAsync(int ar, int decoder, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(60));
        string last = "";
        while (DateTime.UtcNow < deadline)
        {
            last = await Http.GetStringAsync(new Uri(Front!, "health"));
            using var doc = JsonDocument.Parse(last);
            var d = doc.RootElement.GetProperty("devices");
            if (d.GetProperty("ar").GetString()!.StartsWith($"cluster ({ar} ar node") && d.GetProperty("decoder").GetString()!.StartsWith($"cluster ({decoder} decoder node")) return;
            await Task.Delay(300);
        }
        throw new AssertFailedException($"The front did not see {ar} AR and {decoder} decoder node(s) in time; last /health: {last}");
    }

    /// <summary>One sample of the front's /metrics (Prometheus text), e.g. <c>tessera_requests_total{outcome="completed"}</c>.</summary>
    public async Task<double> FrontMetricAsync(string sample)
    {
        var text = await Http.GetStringAsync(new Uri(Front!, "metrics"));
        var line = text.Split('\n').FirstOrDefault(l => l.StartsWith(sample + " ", StringComparison.Ordinal))
            ?? throw new AssertFailedException($"the front's /metrics has no {sample}:\n{text}");
        return double.Parse(line[(sample.Length + 1)..], System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>Runs the CLI once and returns its stdout (fails on a non-zero exit).</summary>
    public string RunCli(string args, TimeSpan? timeout = null)
    {
        var (exit, stdout, stderr) = Cli(args, Dir, timeout);
        if (exit != 0) throw new AssertFailedException($"tessera {args} exited {exit}: {stderr}");
        return stdout;
    }

    /// <summary>
    /// Runs the CLI once in <paramref name="workingDirectory"/> with <paramref name="environment"/> changes (null removes
    /// a variable); kills it (and its children) if it runs past <paramref name="timeout"/>.
    /// </summary>
    public static (int Exit, string Stdout, string Stderr) Cli(string args, string workingDirectory, TimeSpan? timeout = null, IReadOnlyDictionary<string, string?>? environment = null)
    {
        var psi = new ProcessStartInfo("dotnet", $"\"{TesseraDll}\" {args}") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = workingDirectory };
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        foreach (var (k, v) in environment ?? new Dictionary<string, string?>())
            if (v is null) psi.Environment.Remove(k); else psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout ?? TimeSpan.FromSeconds(120)))
        {
            p.Kill(entireProcessTree: true);
            p.WaitForExit(10_000);
            throw new AssertFailedException($"tessera {args} did not finish in {(timeout ?? TimeSpan.FromSeconds(120)).TotalSeconds} s; its output so far:\n{stderr.Result}");
        }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>The cluster's nodes from `tessera cluster status --json`.</summary>
    public JsonElement[] Status()
    {
        using var doc = JsonDocument.Parse(RunCli($"cluster status --cluster {Connection} --json"));
        return doc.RootElement.GetProperty("nodes").EnumerateArray().Select(e => e.Clone()).ToArray();
    }

    public static long Completed(JsonElement node, string stage) =>
        node.GetProperty("workers").EnumerateArray().Where(w => w.GetProperty("stage").GetString() == stage).Sum(w => w.GetProperty("completed").GetInt64());

    public static string[] WorkerStages(JsonElement node) => node.GetProperty("workers").EnumerateArray().Select(w => w.GetProperty("stage").GetString()!).ToArray();

    /// <summary>SIGKILL: the process gets no chance to leave the cluster.</summary>
    public void Kill(Proc p) { try { p.Process.Kill(entireProcessTree: true); p.Process.WaitForExit(10_000); } catch (InvalidOperationException) { } }

    public string Logs() { lock (_procs) return string.Join("\n", _procs.Select(p => $"--- {p.Name}\n{p.Output}")); }

    public void Dispose()
    {
        Http.Dispose();
        List<Proc> all;
        lock (_procs) all = _procs.AsEnumerable().Reverse().ToList();
        foreach (var p in all)
        {
            try { if (!p.Process.HasExited) { p.Process.Kill(entireProcessTree: true); p.Process.WaitForExit(10_000); } } catch (Exception) { }
            p.Process.Dispose();
        }
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { }
    }
}
