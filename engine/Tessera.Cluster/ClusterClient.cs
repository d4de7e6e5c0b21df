using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans;
using Orleans.Configuration;
using Orleans.Hosting;
using Orleans.Runtime;

namespace Tessera.Cluster;

/// <summary>An Orleans client connected to a Tessera cluster, and what its nodes say about themselves.</summary>
public sealed class ClusterClient : IAsyncDisposable
{
    private readonly IHost _host;

    private ClusterClient(IHost host, ClusterConnection connection) { _host = host; Connection = connection; Client = host.Services.GetRequiredService<IClusterClient>(); }

    /// <summary>How long connecting may take before it fails with "No Tessera node answered".</summary>
    public static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(20);

    public ClusterConnection Connection { get; }
    public IClusterClient Client { get; }

    /// <summary>Connects; a one-line <see cref="IOException"/> when no node answers.</summary>
    public static async Task<ClusterClient> ConnectAsync(ClusterConnection connection, TimeSpan? responseTimeout = null, TextWriter? log = null, CancellationToken cancel = default)
    {
        await connection.CheckReachableAsync(cancel);
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders();
        if (log is not null) builder.Logging.AddProvider(new OneLineLoggerProvider(log)).SetMinimumLevel(LogLevel.Warning);
        builder.UseOrleansClient(c =>
        {
            connection.ConfigureClient(c);
            c.Configure<ClientMessagingOptions>(o => o.ResponseTimeout = responseTimeout ?? TimeSpan.FromSeconds(60));
            c.Configure<GatewayOptions>(o => o.GatewayListRefreshPeriod = TimeSpan.FromSeconds(2));
        });
        var host = builder.Build();
        // Bounded: with Redis up and no node in it, Orleans' client can keep looking for a gateway for minutes.
        using var startLimit = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        startLimit.CancelAfter(ConnectTimeout);
        try { await host.StartAsync(startLimit.Token).WaitAsync(startLimit.Token); }
        catch (Exception e) when (e is not OperationCanceledException || !cancel.IsCancellationRequested)
        {
            host.Dispose();
            var why = e is OperationCanceledException ? $"none within {ConnectTimeout.TotalSeconds:0} s" : (e.InnerException ?? e).Message.ReplaceLineEndings(" ");
            throw new IOException($"No Tessera node answered at {connection.Text} ({why}); start one with 'tessera node --cluster {connection.Text}'.", e);
        }
        return new ClusterClient(host, connection);
    }

    /// <summary>Silos the membership table lists as active (a node killed a moment ago may still be listed).</summary>
    public async Task<IReadOnlyList<string>> ActiveSilosAsync()
    {
        var hosts = await Client.GetGrain<IManagementGrain>(0).GetHosts(onlyActive: true);
        return hosts.Keys.Select(s => s.ToParsableString()).ToList();
    }

    /// <summary>Asks every active node for its info; nodes that do not answer within <paramref name="timeout"/> are left out.</summary>
    public async Task<IReadOnlyList<NodeInfo>> NodesAsync(TimeSpan timeout, IEnumerable<string>? silos = null)
    {
        var list = silos?.ToList() ?? (await ActiveSilosAsync()).ToList();
        var infos = await Task.WhenAll(list.Select(async s =>
        {
            try { return await Client.GetGrain<INodeGrain>(WorkerKeys.Node(s)).GetInfo().WaitAsync(timeout); }
            catch (Exception) { return null; }
        }));
        return infos.OfType<NodeInfo>().OrderBy(n => n.Name, StringComparer.Ordinal).ToList();
    }

    public async ValueTask DisposeAsync()
    {
        try { await _host.StopAsync(TimeSpan.FromSeconds(5)); } catch (Exception) { }
        _host.Dispose();
    }
}
