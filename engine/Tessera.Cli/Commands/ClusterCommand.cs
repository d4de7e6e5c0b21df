using System.CommandLine;
using Tessera.Cluster;

namespace Tessera.Cli.Commands;

/// <summary><c>tessera cluster status</c>: what the nodes of a cluster serve and how busy they are.</summary>
public static class ClusterCommand
{
    public static Command Create()
    {
        var cluster = new Option<string>("--cluster") { Description = "Membership: redis://host:port or localhost.", Required = true };
        var json = new Option<bool>("--json") { Description = "Print JSON instead of a table." };
        var status = new Command("status", "List the nodes: stages, devices, model, workers (active/queued/capacity) and completed work.") { cluster, json };
        status.SetAction((parse, cancel) => CliErrors.RunAsync(async () =>
        {
            try
            {
                var connection = ClusterConnection.Parse(parse.GetValue(cluster));
                await using var client = await ClusterClient.ConnectAsync(connection, TimeSpan.FromSeconds(10), cancel: cancel);
                var nodes = await client.NodesAsync(TimeSpan.FromSeconds(3));
                Console.Write(parse.GetValue(json)
                    ? ClusterStatus.ToJson(connection, nodes).ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }) + Environment.NewLine
                    : ClusterStatus.ToText(connection, nodes));
                return 0;
            }
            catch (IOException e)
            {
                Console.Error.WriteLine($"error: {e.Message}");
                return 1;
            }
        }));
        return new Command("cluster", "Inspect a Tessera cluster (see tessera node, tessera serve --cluster).") { status };
    }
}
