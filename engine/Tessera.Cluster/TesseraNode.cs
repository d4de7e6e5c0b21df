using System.Net;
using System.Security.Cryptography;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;
using Orleans.Hosting;
using Orleans.Runtime.MembershipService.SiloMetadata;
using Tessera.Pipeline;

namespace Tessera.Cluster;

/// <summary>How a <c>tessera node</c> joins the cluster and what it serves.</summary>
public sealed record NodeOptions
{
    public required ClusterConnection Connection { get; init; }
    /// <summary>Stages this node serves: ar, decoder or both.</summary>
    public IReadOnlyList<string> Stages { get; init; } = Tessera.Cluster.Stages.All;
    public int SiloPort { get; init; } = 11111;
    public int GatewayPort { get; init; } = 30000;
    /// <summary>The address other nodes and clients reach this one on (loopback for a one-machine cluster).</summary>
    public IPAddress Advertised { get; init; } = IPAddress.Loopback;
    /// <summary>
    /// Orleans' Kubernetes hosting (<see cref="KubernetesHosting"/>): the pod's name and IP instead of
    /// <see cref="Name"/>'s silo name and <see cref="Advertised"/>; membership still in Redis.
    /// </summary>
    public bool Kubernetes { get; init; }
    public int MaxBatch { get; init; } = 8;
    public int QueueCapacity { get; init; } = 64;
    /// <summary>
    /// About how long a silent node stays a member: Orleans probes every third of it and declares a node dead after
    /// two missed probes. Null keeps Orleans' defaults (about a minute).
    /// </summary>
    public TimeSpan? MembershipTimeout { get; init; }
    public string Name { get; init; } = KubernetesHosting.PodName ?? $"{Environment.MachineName}-{Environment.ProcessId}";

    public void Validate()
    {
        if (Stages.Count == 0) throw new ArgumentException("--stages is empty; give ar, decoder or ar,decoder.");
        foreach (var s in Stages)
            if (!Tessera.Cluster.Stages.All.Contains(s)) throw new ArgumentException($"--stages has '{s}'; the stages are ar and decoder (e.g. --stages ar,decoder).");
        if (SiloPort is < 1 or > 65535) throw new ArgumentException($"--silo-port {SiloPort} is not a port (1-65535).");
        if (GatewayPort is < 1 or > 65535 || GatewayPort == SiloPort) throw new ArgumentException($"--gateway-port {GatewayPort} must be a port (1-65535) other than --silo-port.");
        if (MaxBatch is < 1 or > 256) throw new ArgumentException($"--max-batch is {MaxBatch}; it must be 1-256.");
        if (QueueCapacity < 1) throw new ArgumentException($"--queue is {QueueCapacity}; it must be at least 1.");
        if (Kubernetes && Connection.IsLocalhost)
            throw new ArgumentException("--kubernetes needs --cluster redis://host:port (membership in Redis, e.g. redis://tessera-redis:6379 as deploy/k8s/redis.yaml names it); localhost clustering is for one machine.");
        if (MembershipTimeout is { } t && (t < TimeSpan.FromSeconds(1) || t > TimeSpan.FromMinutes(10)))
            throw new ArgumentException($"--membership-timeout is {t.TotalSeconds} s; it must be 1-600 seconds.");
    }
}

/// <summary>A running node: an Orleans silo hosting this machine's stage workers.</summary>
public sealed class TesseraNode : IAsyncDisposable
{
    private readonly IHost _host;
    private readonly NodeServices _services;

    private TesseraNode(IHost host, NodeServices services) { _host = host; _services = services; }

    public NodeServices Services => _services;

    /// <summary>Sha256 of the manifest and the ONNX graphs, first 16 hex digits: nodes and fronts with the same hash run the same model.</summary>
    public static string ModelHash(ModelPackage package)
    {
        using var sha = SHA256.Create();
        foreach (var file in new[] { ModelPackage.ManifestFile }.Concat(Directory.EnumerateFiles(package.Directory, "*.onnx").Select(Path.GetFileName).Order(StringComparer.Ordinal)))
        {
            var bytes = File.ReadAllBytes(Path.Combine(package.Directory, file!));
            sha.TransformBlock(bytes, 0, bytes.Length, null, 0);
        }
        sha.TransformFinalBlock([], 0, 0);
        return Convert.ToHexStringLower(sha.Hash!)[..16];
    }

    /// <summary>Starts the silo (joins the cluster) with stage queues over <paramref name="generator"/>.</summary>
    public static async Task<TesseraNode> StartAsync(NodeOptions options, ImageGenerator generator, TextWriter? log = null, CancellationToken cancel = default)
    {
        options.Validate();
        if (options.Kubernetes) KubernetesHosting.CheckInPod();
        await options.Connection.CheckReachableAsync(cancel);
        var stages = Tessera.Cluster.Stages.All.Where(options.Stages.Contains).ToArray();
        var metadata = new Dictionary<string, string>
        {
            [NodeMetadata.Name] = options.Name,
            [NodeMetadata.Stages] = string.Join(",", stages),
            [NodeMetadata.Model] = generator.Package.Manifest.Name,
            [NodeMetadata.ModelHash] = ModelHash(generator.Package),
            [NodeMetadata.MemoryBytes] = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes.ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        if (stages.Contains(Tessera.Cluster.Stages.Ar)) metadata[NodeMetadata.ArDevice] = generator.ArDevice.ToString();
        if (stages.Contains(Tessera.Cluster.Stages.Decoder)) metadata[NodeMetadata.DecoderDevice] = generator.DecoderDevice.ToString();
        var services = new NodeServices(options.Name, metadata,
            stages.Contains(Tessera.Cluster.Stages.Ar) ? new ArStageQueue(generator, options.MaxBatch, options.QueueCapacity) : null,
            stages.Contains(Tessera.Cluster.Stages.Decoder) ? new DecoderStageQueue(generator, options.MaxBatch, options.QueueCapacity) : null);

        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders();
        if (log is not null) builder.Logging.AddProvider(new OneLineLoggerProvider(log)).SetMinimumLevel(LogLevel.Warning).AddFilter("Orleans.Runtime.Silo", LogLevel.Error).AddFilter("Orleans.Runtime.Watchdog", LogLevel.Error);
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(10));
        builder.UseOrleans(silo =>
        {
            ConfigureMembership(silo, options);
            silo.UseSiloMetadata(metadata);
            silo.Services.AddSingleton(services);
            silo.Services.AddPlacementDirector<StagePlacementStrategy, StagePlacementDirector>();
            if (options.MembershipTimeout is { } t) silo.Configure<ClusterMembershipOptions>(o => ShortMembership(o, t));
        });
        var host = builder.Build();
        try { await host.StartAsync(cancel); }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            services.Dispose();
            host.Dispose();
            var why = e.InnerException?.Message ?? e.Message;
            if (why.Contains("address already in use", StringComparison.OrdinalIgnoreCase))
                throw new IOException($"Port {options.SiloPort} or {options.GatewayPort} is in use; pass --silo-port and --gateway-port with free ports.", e);
            throw new IOException($"The node could not join the cluster at {options.Connection.Text}: {why}", e);
        }
        return new TesseraNode(host, services);
    }

    /// <summary>
    /// Membership, endpoints and silo name from <paramref name="options"/>: Redis or localhost clustering on
    /// <see cref="NodeOptions.Advertised"/>, or with <see cref="NodeOptions.Kubernetes"/> Redis membership under
    /// Orleans' Kubernetes hosting (pod name as silo name, pod IP advertised, every address listened on).
    /// </summary>
    public static void ConfigureMembership(ISiloBuilder silo, NodeOptions options)
    {
        // Under Kubernetes the pod's IP is set here rather than left to the hosting: Orleans' own default (the first
        // interface address) fills EndpointOptions before the hosting looks, so POD_IP would be ignored.
        options.Connection.ConfigureSilo(silo, options.SiloPort, options.GatewayPort, options.Kubernetes ? KubernetesHosting.PodIp : options.Advertised);
        if (options.Kubernetes) KubernetesHosting.Configure(silo); // it sets the silo name to the pod's, and checks they match
        else silo.Configure<SiloOptions>(o => o.SiloName = options.Name);
        if (options.MembershipTimeout is { } t) silo.Configure<ClusterMembershipOptions>(o => ShortMembership(o, t));
    }

    internal static void ShortMembership(ClusterMembershipOptions o, TimeSpan t)
    {
        o.ProbeTimeout = t / 3;
        o.NumMissedProbesLimit = 2;
        o.NumVotesForDeathDeclaration = 1;
        o.TableRefreshTimeout = t / 3;
        o.IAmAliveTablePublishTimeout = t / 2;
        o.DeathVoteExpirationTimeout = t * 2;
        o.LocalHealthDegradationMonitoringPeriod = t / 3;
    }

    public async ValueTask DisposeAsync()
    {
        try { await _host.StopAsync(); } catch (Exception) { /* leaving: the others will notice */ }
        _host.Dispose();
        _services.Dispose();
    }
}

/// <summary>Orleans warnings as one line each ("warn Orleans.Membership: …"), no stack traces.</summary>
internal sealed class OneLineLoggerProvider(TextWriter writer) : ILoggerProvider
{
    public ILogger CreateLogger(string category) => new Logger(writer, category);
    public void Dispose() { }

    private sealed class Logger(TextWriter writer, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel level) => level >= LogLevel.Warning;
        public void Log<TState>(LogLevel level, EventId id, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(level)) return;
            var line = formatter(state, exception).ReplaceLineEndings(" ");
            if (line.Length > 400) line = line[..400] + "…";
            lock (writer) writer.WriteLine($"{(level >= LogLevel.Error ? "error" : "warn")} {category}: {line}");
        }
    }
}
