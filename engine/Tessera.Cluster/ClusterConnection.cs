using System.Net;
using System.Net.Sockets;
using Orleans.Configuration;
using Microsoft.Extensions.Hosting;
using Orleans.Hosting;
using StackExchange.Redis;

namespace Tessera.Cluster;

/// <summary>
/// Where cluster membership lives: <c>redis://host:port</c> (Orleans Redis clustering on a real redis-server) or
/// <c>localhost</c> (Orleans development clustering: every node on this machine, the first one on silo port 11111
/// is the primary, clients look for gateways on ports 30000-30009).
/// </summary>
public sealed record ClusterConnection(string Text, string? RedisEndpoint)
{
    public const string ClusterId = "tessera";
    public const string ServiceId = "tessera";
    public const int LocalPrimarySiloPort = 11111;
    public static readonly int[] LocalGatewayPorts = Enumerable.Range(30000, 10).ToArray();

    public bool IsLocalhost => RedisEndpoint is null;

    public static ClusterConnection Parse(string? text)
    {
        const string what = "use redis://host:port (membership in Redis) or localhost (development clustering, one machine)";
        if (string.IsNullOrWhiteSpace(text)) throw new ArgumentException($"--cluster is empty; {what}.");
        text = text.Trim();
        if (text.Equals("localhost", StringComparison.OrdinalIgnoreCase)) return new(text, null);
        if (!text.StartsWith("redis://", StringComparison.OrdinalIgnoreCase) || !Uri.TryCreate(text, UriKind.Absolute, out var uri) || uri.Port <= 0 || string.IsNullOrEmpty(uri.Host))
            throw new ArgumentException($"--cluster '{text}' is not a connection; {what}, e.g. redis://127.0.0.1:6379.");
        return new(text, $"{uri.Host}:{uri.Port}");
    }

    /// <summary>Fails with a one-line message when Redis is not listening (before Orleans would retry for minutes).</summary>
    public async Task CheckReachableAsync(CancellationToken cancel = default)
    {
        if (RedisEndpoint is null) return;
        var (host, port) = (RedisEndpoint[..RedisEndpoint.LastIndexOf(':')], int.Parse(RedisEndpoint[(RedisEndpoint.LastIndexOf(':') + 1)..]));
        using var tcp = new TcpClient();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        timeout.CancelAfter(TimeSpan.FromSeconds(3));
        try { await tcp.ConnectAsync(host, port, timeout.Token); }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            throw new IOException($"Cannot reach Redis at {RedisEndpoint} for cluster membership ({(e is SocketException s ? s.Message : "no answer in 3 s")}); start redis-server there or fix --cluster.");
        }
    }

    private ConfigurationOptions RedisOptions()
    {
        var o = ConfigurationOptions.Parse(RedisEndpoint!);
        o.AbortOnConnectFail = false;
        return o;
    }

    public void ConfigureSilo(ISiloBuilder silo, int siloPort, int gatewayPort, IPAddress advertised)
    {
        silo.Configure<ClusterOptions>(o => { o.ClusterId = ClusterId; o.ServiceId = ServiceId; });
        if (IsLocalhost)
        {
            silo.UseLocalhostClustering(siloPort, gatewayPort, new IPEndPoint(IPAddress.Loopback, LocalPrimarySiloPort), ServiceId, ClusterId);
            return;
        }
        silo.UseRedisClustering(o => o.ConfigurationOptions = RedisOptions());
        silo.ConfigureEndpoints(advertised, siloPort, gatewayPort, listenOnAnyHostAddress: !IPAddress.IsLoopback(advertised));
    }

    public void ConfigureClient(IClientBuilder client)
    {
        client.Configure<ClusterOptions>(o => { o.ClusterId = ClusterId; o.ServiceId = ServiceId; });
        if (IsLocalhost) client.UseLocalhostClustering(LocalGatewayPorts, ServiceId, ClusterId);
        else client.UseRedisClustering(o => o.ConfigurationOptions = RedisOptions());
    }
}
