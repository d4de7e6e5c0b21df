using System.CommandLine;
using Tessera.Cluster;
using Tessera.Pipeline;
using Tessera.Pipeline.Batching;
using Tessera.Server;

namespace Tessera.Cli.Commands;

/// <summary><c>tessera serve --cluster</c>: the same HTTP API and page, generating through the cluster's nodes.</summary>
internal static class ServeClusterCommand
{
    public static async Task<int> RunAsync(ParseResult parse, string connectionText, ModelPackage package, Option<int> queue, Option<int> timeout, Option<int> maxN,
        Option<string> host, Option<int> port, Option<string?> apiKey, Option<string[]> allowedHosts, CancellationToken cancel)
    {
        if (parse.GetValue(timeout) is < 1 or > 86400) throw new ArgumentException($"--timeout is {parse.GetValue(timeout)}; it must be from 1 to 86400 seconds.");
        var connection = ClusterConnection.Parse(connectionText);
        var batching = new BatchingOptions { QueueCapacity = parse.GetValue(queue) };
        var requestTimeout = TimeSpan.FromSeconds(parse.GetValue(timeout));
        await using var client = await ClusterClient.ConnectAsync(connection, requestTimeout, Console.Error, cancel);
        await using var generator = await ClusterGenerator.StartAsync(client, package, batching, Console.Error);
        var serverOptions = new ServerOptions
        {
            Host = parse.GetValue(host)!, Port = parse.GetValue(port), ApiKey = parse.GetValue(apiKey) ?? Environment.GetEnvironmentVariable("TESSERA_API_KEY"),
            Batching = batching, RequestTimeout = requestTimeout, MaxN = parse.GetValue(maxN), AllowedHosts = parse.GetValue(allowedHosts) ?? [],
        };
        await using var server = await TesseraServer.StartAsync(generator, serverOptions, Console.Error);
        Console.WriteLine($"tessera serve: model {package.Manifest.Name} through cluster {connection.Text} ({generator.Nodes.Count} node(s): ar on {generator.ArPlacement}, decoder on {generator.DecoderPlacement}); queue {batching.QueueCapacity}");
        Console.WriteLine($"listening on {server.BaseAddress}");
        Console.Out.Flush();
        try { await Task.Delay(Timeout.Infinite, cancel); }
        catch (OperationCanceledException) { Console.Error.WriteLine("stopping"); }
        return 0;
    }
}
