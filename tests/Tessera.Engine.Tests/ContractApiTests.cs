using System.Reflection;
using Tessera.Abstractions;

namespace Tessera.Engine.Tests;

/// <summary>
/// Tessera.Abstractions evolves without breaking plugins built today: its public surface is compared with the
/// committed baseline (tests/Tessera.Engine.Tests/Tessera.Abstractions.api.txt). Nothing may be removed or changed;
/// a new member of an interface must have a default implementation (a built plugin does not implement it); anything
/// new is added to the baseline on purpose (set TESSERA_UPDATE_API_BASELINE=1 and run this test once).
/// </summary>
[TestClass]
public sealed class ContractApiTests
{
    private static string BaselinePath => Path.Combine(TestPaths.RepoRoot, "tests", "Tessera.Engine.Tests", "Tessera.Abstractions.api.txt");

    /// <summary>One line per public type and member, sorted: "type …", "member Type: signature", "abstract-member …" for members a plugin must implement.</summary>
    public static List<string> Describe(Assembly assembly)
    {
        var lines = new List<string>();
        foreach (var t in assembly.GetExportedTypes())
        {
            string kind = t.IsInterface ? "interface" : t.IsEnum ? "enum" : t.IsValueType ? "struct" : t.IsAbstract && t.IsSealed ? "static class" : t.IsAbstract ? "abstract class" : t.IsSealed ? "sealed class" : "class";
            var bases = new[] { t.BaseType is { } b && b != typeof(object) && b != typeof(ValueType) && b != typeof(Enum) ? b.FullName : null }
                .Concat(t.GetInterfaces().Select(i => i.FullName)).Where(n => n is not null).Order(StringComparer.Ordinal);
            lines.Add($"type {kind} {t.FullName}{(bases.Any() ? " : " + string.Join(", ", bases) : "")}");
            if (t.IsEnum)
            {
                foreach (var name in Enum.GetNames(t)) lines.Add($"member {t.FullName}: {name} = {Convert.ToInt64(Enum.Parse(t, name))}");
                continue;
            }
            foreach (var m in t.GetMembers(BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly))
            {
                if (m is MethodInfo { IsSpecialName: true }) continue; // property/event accessors are covered by their property or event
                bool mustImplement = t.IsInterface && m is MethodInfo { IsAbstract: true } or PropertyInfo { GetMethod.IsAbstract: true };
                lines.Add($"{(mustImplement ? "abstract-member" : "member")} {t.FullName}: {m.MemberType} {m}");
            }
        }
        lines.Sort(StringComparer.Ordinal);
        return lines;
    }

    [TestMethod]
    public void TheContractsPublicSurfaceOnlyGrowsAndNewInterfaceMembersHaveDefaults()
    {
        var current = Describe(typeof(ITesseraPlugin).Assembly);
        if (Environment.GetEnvironmentVariable("TESSERA_UPDATE_API_BASELINE") == "1") File.WriteAllLines(BaselinePath, current);
        var baseline = File.ReadAllLines(BaselinePath).Where(l => l.Length > 0).ToList();
        var removed = baseline.Except(current).ToList();
        Assert.AreEqual(0, removed.Count, "removed or changed (this breaks plugins built against contract 1.x):\n" + string.Join("\n", removed));
        var added = current.Except(baseline).ToList();
        var mustImplement = added.Where(l => l.StartsWith("abstract-member ", StringComparison.Ordinal)).ToList();
        Assert.AreEqual(0, mustImplement.Count, "new interface members without a default implementation (built plugins do not implement them):\n" + string.Join("\n", mustImplement));
        Assert.AreEqual(0, added.Count, "new public API: if it is meant, add it to the baseline (TESSERA_UPDATE_API_BASELINE=1):\n" + string.Join("\n", added));
    }
}
