using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Tessera.Abstractions;
using Tessera.Engine;

namespace Tessera.Cli.Commands;

/// <summary><c>tessera devices</c>: plugins found (loaded or failed, with reasons) and the devices they offer.</summary>
public static class DevicesCommand
{
    public static Command Create()
    {
        var json = new Option<bool>("--json") { Description = "Print JSON instead of a table." };
        var cmd = new Command("devices", "List plugins (loaded or failed, with the reason) and their devices (available or not, with the reason).") { json };
        cmd.SetAction(parse => CliErrors.Run(() =>
        {
            using var engine = new TesseraEngine(GlobalOptions.Build(parse));
            Console.WriteLine(parse.GetValue(json) ? ToJson(engine).ToJsonString(new JsonSerializerOptions { WriteIndented = true }) : ToTable(engine));
            return 0;
        }));
        return cmd;
    }

    public static JsonObject ToJson(TesseraEngine engine) => new()
    {
        ["contractVersion"] = TesseraContract.Version.ToString(),
        ["plugins"] = new JsonArray(engine.Plugins.Select(p => (JsonNode)new JsonObject
        {
            ["name"] = p.Name,
            ["vendor"] = p.Vendor,
            ["version"] = p.Version?.ToString(),
            ["contractVersion"] = p.ContractVersion?.ToString(),
            ["state"] = p.State.ToString().ToLowerInvariant(),
            ["reason"] = p.Reason,
            ["location"] = p.Location,
        }).ToArray()),
        ["devices"] = new JsonArray(engine.Devices.Devices.Select(d => (JsonNode)new JsonObject
        {
            ["id"] = d.Info.Id.ToString(),
            ["kind"] = d.Info.Id.Kind,
            ["index"] = d.Info.Id.Index,
            ["name"] = d.Info.Name,
            ["plugin"] = d.PluginName,
            ["available"] = d.Info.IsAvailable,
            ["reason"] = d.Info.UnavailableReason,
            ["totalMemoryBytes"] = d.Info.TotalMemoryBytes,
            ["freeMemoryBytes"] = d.Info.FreeMemoryBytes,
            ["preferenceScore"] = d.Info.PreferenceScore,
            ["capabilities"] = new JsonArray(d.Info.Capabilities.Order().Select(c => (JsonNode)JsonValue.Create(c)!).ToArray()),
            ["properties"] = new JsonObject(d.Info.Properties.OrderBy(p => p.Key).Select(p => KeyValuePair.Create(p.Key, (JsonNode?)JsonValue.Create(p.Value)))),
        }).ToArray()),
        ["providerFailures"] = new JsonArray(engine.Devices.Failures.Select(f => (JsonNode)new JsonObject
        {
            ["plugin"] = f.PluginName, ["kind"] = f.Kind, ["reason"] = f.Reason,
        }).ToArray()),
        ["notes"] = new JsonArray(engine.PluginNotes.Select(n => (JsonNode)JsonValue.Create(n)!).ToArray()),
    };

    private static string ToTable(TesseraEngine engine)
    {
        var w = new StringWriter();
        w.WriteLine($"Plugins (host contract {TesseraContract.Version}):");
        if (engine.Plugins.Count == 0) w.WriteLine("  none found");
        foreach (var p in engine.Plugins)
            w.WriteLine(p.State == Engine.Plugins.PluginState.Loaded
                ? $"  {p.Name,-10} loaded   {p.Vendor} {p.Version} (contract {p.ContractVersion})  {p.Location}"
                : $"  {p.Name ?? Path.GetFileName(p.Location),-10} FAILED   {p.Reason}");
        foreach (var n in engine.PluginNotes) w.WriteLine($"  note: {n}");
        w.WriteLine("Devices:");
        if (engine.Devices.Devices.Count == 0) w.WriteLine("  none");
        foreach (var d in engine.Devices.Devices)
        {
            var i = d.Info;
            w.WriteLine(i.IsAvailable
                ? $"  {i.Id,-9} available    {i.Name}  memory {Gib(i.TotalMemoryBytes)} ({Gib(i.FreeMemoryBytes)} free)  score {i.PreferenceScore}  [{string.Join(", ", i.Capabilities.Order())}]"
                : $"  {i.Id,-9} unavailable  {i.UnavailableReason}");
        }
        foreach (var f in engine.Devices.Failures) w.WriteLine($"  {f.Kind}:*  ({f.PluginName}) {f.Reason}");
        return w.ToString().TrimEnd();
    }

    private static string Gib(long? bytes) => bytes is long b ? $"{b / (double)(1L << 30):F1} GiB" : "?";
}
