using System.Text.Json;
using Tessera.Models.Training;
using Tessera.TestSupport;

namespace Tessera.Training.Tests;

/// <summary>The bad-input corpus's training checkpoints (tests/corpus/hostile/checkpoints) through the C# API.</summary>
[TestClass]
public sealed class HostileCorpusTrainingTests
{
    private static string Corpus => Path.Combine(TestPaths.RepoRoot, "tests", "corpus", "hostile");

    [TestMethod]
    public void EveryCorpusCheckpointIsACheckpointExceptionNamingTheFile()
    {
        foreach (var c in JsonDocument.Parse(File.ReadAllText(Path.Combine(Corpus, "checkpoints", "cases.json"))).RootElement.EnumerateArray())
        {
            var file = Path.Combine(Corpus, "checkpoints", c.GetProperty("file").GetString()!);
            var e = Assert.ThrowsExactly<TrainingCheckpointException>(() => Checkpoint.Load(file), file);
            StringAssert.Contains(e.Message, c.GetProperty("contains").GetString()!, file);
            Assert.IsFalse(e.Message.Contains('\n'), $"{file}: one line: {e.Message}");
            StringAssert.Contains(e.Message, file);
        }
        StringAssert.Contains(Assert.ThrowsExactly<TrainingCheckpointException>(() => Checkpoint.Load("/dev/zero")).Message, "not a regular file");
    }
}
