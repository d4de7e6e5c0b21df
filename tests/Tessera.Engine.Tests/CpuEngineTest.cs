namespace Tessera.Engine.Tests;

/// <summary>Base for tests that need a temporary folder and an engine with only the CPU plugin (private cache).</summary>
public abstract class CpuEngineTest
{
    protected string Temp { get; private set; } = "";
    protected TesseraEngine Engine { get; private set; } = null!;

    [TestInitialize]
    public void CreateEngine()
    {
        Temp = TestPaths.NewTempDir();
        Engine = new TesseraEngine(TestPaths.Options(Path.Combine(Temp, "cache"), TestPaths.Fixture("cpu")));
    }

    [TestCleanup]
    public void DisposeEngine()
    {
        Engine.Dispose();
        Directory.Delete(Temp, recursive: true);
    }
}
