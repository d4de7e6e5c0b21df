using System.Diagnostics;

namespace Tessera.Models.Training;

/// <summary>
/// Guards a training run folder (checkpoints/, loss.csv, loss.png) against losing work: a fresh run never starts
/// over an existing one without <c>force</c>, a resume whose checkpoints are all unusable stops instead of silently
/// starting from step 0, and temporary files left by killed processes are removed.
/// </summary>
public static class RunFolder
{
    public const string CheckpointFolder = "checkpoints";
    public const string LossFile = "loss.csv";

    /// <summary>
    /// Checks (and with <paramref name="force"/> clears) a run folder before training. Throws
    /// <see cref="TrainingCheckpointException"/> naming the folder and what to do when starting would lose work.
    /// </summary>
    public static void Prepare(string runDirectory, bool resume, bool force, TextWriter log)
    {
        CleanTemporaryFiles(runDirectory, log);
        var store = new CheckpointStore(Path.Combine(runDirectory, CheckpointFolder));
        var checkpoints = store.List();
        var loss = Path.Combine(runDirectory, LossFile);
        long lossRows = File.Exists(loss) ? Math.Max(0, File.ReadLines(loss).LongCount() - 1) : 0;
        bool holdsRun = checkpoints.Count > 0 || lossRows > 0;
        if (!holdsRun) return;

        if (!resume && !force)
            throw new TrainingCheckpointException(
                $"Run folder {runDirectory} already holds a run ({Describe(checkpoints, lossRows)}). Continue it with --resume, " +
                "train into a new --out folder, or pass --force to delete that run and start over.");
        if (resume && checkpoints.Count > 0 && !force && !checkpoints.Any(IsValid))
            throw new TrainingCheckpointException(
                $"Every checkpoint in {store.Directory} is unusable ({string.Join(", ", checkpoints.Select(Path.GetFileName))} are truncated or corrupt), so there is nothing to resume. " +
                "Restore a good checkpoint into that folder, or pass --force to delete them and start over from step 0.");
        if (force && (!resume || !checkpoints.Any(IsValid)))
        {
            foreach (var c in checkpoints) File.Delete(c);
            foreach (var f in new[] { loss, Path.ChangeExtension(loss, ".png") }) File.Delete(f);
            log.WriteLine($"--force: deleted the previous run in {runDirectory} ({Describe(checkpoints, lossRows)}); starting over");
        }
    }

    /// <summary>Removes <c>*.&lt;pid&gt;.tmp</c> files (half-written checkpoints, plots) whose writing process is gone.</summary>
    public static void CleanTemporaryFiles(string runDirectory, TextWriter log)
    {
        foreach (var dir in new[] { runDirectory, Path.Combine(runDirectory, CheckpointFolder) })
        {
            if (!Directory.Exists(dir)) continue;
            foreach (var temp in Directory.GetFiles(dir, "*.tmp"))
            {
                var parts = Path.GetFileName(temp).Split('.');
                if (parts.Length < 3 || !int.TryParse(parts[^2], out var pid)) continue;
                if (pid != Environment.ProcessId && IsRunning(pid)) continue; // another live process is writing it
                File.Delete(temp);
                log.WriteLine($"removed {temp}, left by an interrupted process {pid}");
            }
        }
    }

    private static bool IsRunning(int pid)
    {
        try { using var p = Process.GetProcessById(pid); return !p.HasExited; }
        catch (ArgumentException) { return false; }
        catch (InvalidOperationException) { return false; }
    }

    private static bool IsValid(string checkpoint) => Checkpoint.Verify(checkpoint);

    private static string Describe(IReadOnlyList<string> checkpoints, long lossRows) =>
        string.Join("; ", new[]
        {
            checkpoints.Count > 0 ? $"{checkpoints.Count} checkpoint(s), newest step {CheckpointStore.StepOf(checkpoints[0])}" : null,
            lossRows > 0 ? $"loss.csv with {lossRows} row(s)" : null,
        }.OfType<string>());
}
