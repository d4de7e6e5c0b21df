using System.Text.Json;

namespace Tessera.TestSupport;

/// <summary>The bad-input corpus in tests/corpus/hostile: one folder per kind, each with a cases.json (see its README).</summary>
public static class HostileCorpus
{
    public static string Root => Path.Combine(TestPaths.RepoRoot, "tests", "corpus", "hostile");

    /// <summary>The cases of one kind ("http", "images", "manifests", ...), as listed in its cases.json.</summary>
    public static List<JsonElement> Cases(string kind) =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(Root, kind, "cases.json"))).RootElement.EnumerateArray().Select(e => e.Clone()).ToList();
}
