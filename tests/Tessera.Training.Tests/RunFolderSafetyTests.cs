using Tessera.Models.Training;

namespace Tessera.Training.Tests;

/// <summary>Training never loses work: corrupt checkpoints, a fresh run into an old folder, orphan temporary files.</summary>
[TestClass]
public sealed class RunFolderSafetyTests
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

    private static StageConfig Tiny(int steps = 6) => new()
    {
        Vq = new VqConfig { ImageSize = 32, Downsamples = 2, Channels = 8, CodebookSize = 32, CodeDim = 8 },
        Train = new TrainConfig { Steps = steps, BatchSize = 8, LearningRate = 3e-3, WarmupSteps = 2, CheckpointEvery = 2, KeepCheckpoints = 3, Seed = 11, Threads = 1 },
    };

    private string Dir => Path.Combine(_temp, "run");
    private string Checkpoints => Path.Combine(Dir, "checkpoints");
    private string Loss => Path.Combine(Dir, "loss.csv");

    private TrainingRun<ImageBatch> Run(StageConfig config, bool resume = false, bool force = false, long? stopAfter = null, StringWriter? log = null) =>
        VqStage.Create(config, Dir, new StageRunOptions(resume, log ?? new StringWriter(), StopAfterStep: stopAfter, Force: force));

    private Dictionary<string, byte[]> Snapshot() =>
        Directory.GetFiles(Dir, "*", SearchOption.AllDirectories).ToDictionary(f => Path.GetRelativePath(Dir, f), File.ReadAllBytes);

    private static void Corrupt(string path)
    {
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
    }

    [TestMethod]
    public void ResumingWhenEveryCheckpointIsCorruptIsRefusedAndTouchesNothing()
    {
        Run(Tiny()).Run(); // checkpoints at 2, 4, 6
        foreach (var c in Directory.GetFiles(Checkpoints, "*.tsr")) Corrupt(c);
        var before = Snapshot();

        var e = Assert.ThrowsExactly<TrainingCheckpointException>(() => Run(Tiny(), resume: true).Run());
        StringAssert.Contains(e.Message, "Every checkpoint in");
        StringAssert.Contains(e.Message, "--force");
        var after = Snapshot();
        CollectionAssert.AreEquivalent(before.Keys.ToList(), after.Keys.ToList(), "no file was added or deleted");
        foreach (var (name, bytes) in before) CollectionAssert.AreEqual(bytes, after[name], $"{name} is unchanged (loss.csv keeps all its rows)");
    }

    [TestMethod]
    public void ResumeSkipsNewerCorruptCheckpointsKeepsEveryValidOneAndRotationNeverDeletesAValidOneForACorruptOne()
    {
        Run(Tiny(8)).Run(); // keeps 4, 6, 8
        var valid4 = File.ReadAllBytes(Path.Combine(Checkpoints, "ckpt-00000004.tsr"));
        Corrupt(Path.Combine(Checkpoints, "ckpt-00000008.tsr"));
        Corrupt(Path.Combine(Checkpoints, "ckpt-00000006.tsr"));
        var rowsBefore = File.ReadAllLines(Loss);

        var log = new StringWriter();
        var result = Run(Tiny(8), resume: true, stopAfter: 6, log: log).Run(); // writes ckpt 6 again
        Assert.AreEqual(5, result.FirstStep, "resumed from the valid checkpoint at step 4");
        StringAssert.Contains(log.ToString(), "Moved it aside");
        var names = Directory.GetFiles(Checkpoints).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        CollectionAssert.Contains(names, "ckpt-00000004.tsr", "the valid checkpoint the run resumed from is kept");
        CollectionAssert.Contains(names, "ckpt-00000006.tsr", "the checkpoint just written is kept");
        CollectionAssert.AreEqual(valid4, File.ReadAllBytes(Path.Combine(Checkpoints, "ckpt-00000004.tsr")));
        foreach (var c in Directory.GetFiles(Checkpoints, "*.tsr")) Checkpoint.Load(c); // every remaining .tsr verifies
        CollectionAssert.Contains(names, "ckpt-00000008.tsr.corrupt", "the corrupt files are kept aside, not deleted");
        var rows = File.ReadAllLines(Loss);
        CollectionAssert.AreEqual(rowsBefore[..5], rows[..5], "the header and the rows up to the resumed step are kept");
        CollectionAssert.AreEqual(Enumerable.Range(1, 6).Select(i => i.ToString()).ToArray(), rows.Skip(1).Select(r => r.Split(',')[0]).ToArray(), "one row per step");
    }

    [TestMethod]
    public void AFreshRunIntoAFolderThatHoldsARunIsRefusedWithoutForceAndForceStartsOver()
    {
        Run(Tiny(), stopAfter: 4).Run();
        var before = Snapshot();

        var e = Assert.ThrowsExactly<TrainingCheckpointException>(() => Run(Tiny()).Run());
        StringAssert.Contains(e.Message, "already holds a run");
        StringAssert.Contains(e.Message, "--resume");
        StringAssert.Contains(e.Message, "--force");
        var after = Snapshot();
        CollectionAssert.AreEquivalent(before.Keys.ToList(), after.Keys.ToList());
        foreach (var (name, bytes) in before) CollectionAssert.AreEqual(bytes, after[name], $"{name} is unchanged");

        // --resume still continues the old run exactly where it stopped.
        Assert.AreEqual(5, Run(Tiny(), resume: true).Run().FirstStep);

        var log = new StringWriter();
        var fresh = Run(Tiny(), force: true, log: log).Run();
        Assert.AreEqual(1, fresh.FirstStep, "--force starts over");
        StringAssert.Contains(log.ToString(), "--force: deleted the previous run");
        Assert.AreEqual(7, File.ReadAllLines(Loss).Length, "a header and the new run's six rows");
        var steps = Directory.GetFiles(Checkpoints, "*.tsr").Select(p => CheckpointStore.StepOf(p)).Order().ToList();
        CollectionAssert.AreEqual(new long?[] { 2, 4, 6 }, steps, "only the new run's checkpoints, and the newest one is kept");
    }

    [TestMethod]
    public void OrphanTemporaryFilesOfDeadProcessesAreRemovedAndALiveProcessesFileIsKept()
    {
        Run(Tiny(), stopAfter: 2).Run();
        // A pid that cannot be running (above the kernel's pid_max default of 4194304) and our own parent's.
        var orphan = Path.Combine(Checkpoints, "ckpt-00000004.tsr.99999999.tmp");
        var plot = Path.Combine(Dir, "loss.png.99999998.tmp");
        using var live = System.Diagnostics.Process.GetCurrentProcess();
        int parent = int.Parse(File.ReadAllText($"/proc/{live.Id}/stat").Split(") ")[1].Split(' ')[1]);
        var other = Path.Combine(Checkpoints, $"ckpt-00000004.tsr.{parent}.tmp");
        foreach (var f in new[] { orphan, plot, other }) File.WriteAllBytes(f, new byte[100]);

        var log = new StringWriter();
        Run(Tiny(), resume: true, log: log).Run();
        Assert.IsFalse(File.Exists(orphan), log.ToString());
        Assert.IsFalse(File.Exists(plot));
        Assert.IsTrue(File.Exists(other), "a temporary file of a running process is left alone");
        StringAssert.Contains(log.ToString(), "removed " + orphan);
    }
}
