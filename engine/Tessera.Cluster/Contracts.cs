using Orleans;

namespace Tessera.Cluster;

/// <summary>The two stages a node can serve, as named on the command line, in silo metadata and in errors.</summary>
public static class Stages
{
    public const string Ar = "ar";
    public const string Decoder = "decoder";
    public static readonly string[] All = [Ar, Decoder];
}

/// <summary>Keys of the silo metadata a node publishes (Orleans <c>UseSiloMetadata</c>).</summary>
public static class NodeMetadata
{
    public const string Stages = "tessera.stages";           // "ar,decoder"
    public const string ArDevice = "tessera.device.ar";      // "cpu:0"
    public const string DecoderDevice = "tessera.device.decoder";
    public const string Model = "tessera.model";
    public const string ModelHash = "tessera.model.hash";
    public const string MemoryBytes = "tessera.memory.bytes";
    public const string Name = "tessera.node";
}

/// <summary>What an AR worker gets: the prompt and sampling settings (front → AR node).</summary>
[GenerateSerializer, Immutable]
public sealed record ArWork(
    [property: Id(0)] string Prompt,
    [property: Id(1)] ulong Seed,
    [property: Id(2)] double? Temperature,
    [property: Id(3)] int? TopK,
    [property: Id(4)] double? TopP,
    [property: Id(5)] byte[]? SourceRgb);

/// <summary>What an AR worker returns: token ids and the glyph text (AR node → front → decoder node).</summary>
[GenerateSerializer, Immutable]
public sealed record ArAnswer(
    [property: Id(0)] WorkStatus Status,
    [property: Id(1)] string? Error,
    [property: Id(2)] int[] PreviewTokens,
    [property: Id(3)] int[] TargetTokens,
    [property: Id(4)] byte[] Glyphs,
    [property: Id(5)] string[] Warnings,
    [property: Id(6)] double EncodeMs,
    [property: Id(7)] double ArMs);

/// <summary>What a decoder worker gets: target token ids, glyph text (UTF-8), the seed, and the request's decoder settings
/// (unset ones take the package's defaults on the node, the sampler included).</summary>
[GenerateSerializer, Immutable]
public sealed record DecoderWork(
    [property: Id(0)] int[] TargetTokens,
    [property: Id(1)] byte[] Glyphs,
    [property: Id(2)] ulong Seed,
    [property: Id(3)] int? Steps,
    [property: Id(4)] double? Cfg,
    [property: Id(5)] string? Sampler = null);

/// <summary>What a decoder worker returns: the PNG.</summary>
[GenerateSerializer, Immutable]
public sealed record DecoderAnswer(
    [property: Id(0)] WorkStatus Status,
    [property: Id(1)] string? Error,
    [property: Id(2)] byte[] Png,
    [property: Id(3)] int Steps,
    [property: Id(4)] double DecoderMs);

/// <summary>How a worker answered. Refusals travel as values, not exceptions, so they need no exception serialization.</summary>
[GenerateSerializer]
public enum WorkStatus { Ok = 0, QueueFull = 1, Failed = 2, Cancelled = 3 }

/// <summary>One stage worker on a node, as <c>cluster status</c> shows it.</summary>
[GenerateSerializer, Immutable]
public sealed record WorkerInfo(
    [property: Id(0)] string Stage,
    [property: Id(1)] string Device,
    [property: Id(2)] int Active,
    [property: Id(3)] int Queued,
    [property: Id(4)] int Capacity,
    [property: Id(5)] long Completed,
    [property: Id(6)] long Failed);

/// <summary>A node: its silo, what it published as metadata, and its workers' counters.</summary>
[GenerateSerializer, Immutable]
public sealed record NodeInfo(
    [property: Id(0)] string Name,
    [property: Id(1)] string Silo,
    [property: Id(2)] Dictionary<string, string> Metadata,
    [property: Id(3)] WorkerInfo[] Workers,
    [property: Id(4)] DateTime StartedUtc)
{
    public IReadOnlyList<string> Stages => Metadata.TryGetValue(NodeMetadata.Stages, out var s) ? s.Split(',', StringSplitOptions.RemoveEmptyEntries) : [];
    public string? DeviceFor(string stage) => Metadata.GetValueOrDefault(stage == Tessera.Cluster.Stages.Ar ? NodeMetadata.ArDevice : NodeMetadata.DecoderDevice);
    public bool Serves(string stage) => Stages.Contains(stage);
}

/// <summary>One per node (keyed by its silo address): answers what the node has and how busy it is.</summary>
public interface INodeGrain : IGrainWithStringKey
{
    Task<NodeInfo> GetInfo();
}

/// <summary>The AR worker of one device on one node (key <c>ar|silo|device</c>); batches its requests.</summary>
public interface IArWorkerGrain : IGrainWithStringKey
{
    Task<ArAnswer> Run(ArWork work, CancellationToken cancel = default);
}

/// <summary>The decoder worker of one device on one node (key <c>decoder|silo|device</c>); batches its requests.</summary>
public interface IDecoderWorkerGrain : IGrainWithStringKey
{
    Task<DecoderAnswer> Run(DecoderWork work, CancellationToken cancel = default);
}

/// <summary>Grain keys: the kind, the silo the worker must live on, and the device.</summary>
public static class WorkerKeys
{
    public static string Node(string silo) => $"node|{silo}";
    public static string Worker(string stage, string silo, string device) => $"{stage}|{silo}|{device}";

    public static (string Kind, string Silo, string? Device) Parse(string key)
    {
        var parts = key.Split('|');
        if (parts.Length < 2) throw new ArgumentException($"Grain key '{key}' is not kind|silo[|device].");
        return (parts[0], parts[1], parts.Length > 2 ? parts[2] : null);
    }
}
