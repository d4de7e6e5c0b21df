using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace Tessera.Cluster;

/// <summary><c>tessera cluster status</c>: nodes, their stages and devices, active workers and queue depths.</summary>
public static class ClusterStatus
{
    public static JsonObject ToJson(ClusterConnection connection, IReadOnlyList<NodeInfo> nodes) => new()
    {
        ["cluster"] = connection.Text,
        ["nodes"] = new JsonArray(nodes.Select(n => (JsonNode)new JsonObject
        {
            ["name"] = n.Name,
            ["silo"] = n.Silo,
            ["stages"] = new JsonArray(n.Stages.Select(s => (JsonNode)s).ToArray()),
            ["devices"] = new JsonObject(n.Stages.Select(s => KeyValuePair.Create(s, (JsonNode?)n.DeviceFor(s)))),
            ["model"] = n.Metadata.GetValueOrDefault(NodeMetadata.Model),
            ["modelHash"] = n.Metadata.GetValueOrDefault(NodeMetadata.ModelHash),
            ["memoryBytes"] = long.TryParse(n.Metadata.GetValueOrDefault(NodeMetadata.MemoryBytes), CultureInfo.InvariantCulture, out var m) ? m : null,
            ["startedUtc"] = n.StartedUtc.ToString("O", CultureInfo.InvariantCulture),
            ["workers"] = new JsonArray(n.Workers.Select(w => (JsonNode)new JsonObject
            {
                ["stage"] = w.Stage, ["device"] = w.Device, ["active"] = w.Active, ["queued"] = w.Queued, ["capacity"] = w.Capacity,
                ["completed"] = w.Completed, ["failed"] = w.Failed,
            }).ToArray()),
        }).ToArray()),
    };

    public static string ToText(ClusterConnection connection, IReadOnlyList<NodeInfo> nodes)
    {
        var w = new StringBuilder();
        w.AppendLine($"cluster {connection.Text}: {nodes.Count} node{(nodes.Count == 1 ? "" : "s")}");
        if (nodes.Count == 0) { w.AppendLine($"  no node answers; start one with 'tessera node --cluster {connection.Text}'"); return w.ToString(); }
        w.AppendLine($"  {"node",-24} {"silo",-28} {"stages",-12} {"model",-28} worker (device: active/queued/capacity, completed)");
        foreach (var n in nodes)
        {
            var workers = string.Join("; ", n.Workers.Select(x => $"{x.Stage} ({x.Device}: {x.Active}/{x.Queued}/{x.Capacity}, {x.Completed} done{(x.Failed > 0 ? $", {x.Failed} failed" : "")})"));
            w.AppendLine($"  {n.Name,-24} {n.Silo,-28} {string.Join(",", n.Stages),-12} {n.Metadata.GetValueOrDefault(NodeMetadata.Model) + " " + n.Metadata.GetValueOrDefault(NodeMetadata.ModelHash),-28} {workers}");
        }
        return w.ToString();
    }
}
