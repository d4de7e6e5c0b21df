using System.Diagnostics;

namespace Tessera.TestSupport;

/// <summary>Runs a command as a test does: output captured, Tessera's environment overrides removed, the whole process tree killed past its limit.</summary>
public static class TestProcess
{
    public sealed record Outcome(int Code, string Out, string Err, TimeSpan Elapsed, bool TimedOut)
    {
        /// <summary>Both streams, the end of them when long (for an assertion message).</summary>
        public string Tail(int chars = 6000)
        {
            var all = $"{Out}\n{Err}";
            return all.Length > chars ? all[^chars..] : all;
        }
    }

    public static Outcome Run(string file, IEnumerable<string> args, TimeSpan limit, string? workDir = null)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (workDir is not null) psi.WorkingDirectory = workDir;
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var name in new[] { "TESSERA_PLUGIN_PATH", "TESSERA_MODEL", "TESSERA_DIAGNOSTICS" }) psi.Environment.Remove(name);
        var watch = Stopwatch.StartNew();
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        bool timedOut = !p.WaitForExit(limit);
        if (timedOut) p.Kill(entireProcessTree: true);
        p.WaitForExit();
        return new Outcome(p.ExitCode, stdout.Result, stderr.Result, watch.Elapsed, timedOut);
    }
}
