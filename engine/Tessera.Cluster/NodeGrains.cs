using Orleans;
using Orleans.Concurrency;
using Orleans.Runtime;

namespace Tessera.Cluster;

/// <summary>What a running node has: its name, published metadata and stage queues (one per stage it serves).</summary>
public sealed class NodeServices(string name, Dictionary<string, string> metadata, ArStageQueue? ar, DecoderStageQueue? decoder) : IDisposable
{
    public string Name { get; } = name;
    public Dictionary<string, string> Metadata { get; } = metadata;
    public ArStageQueue? Ar { get; } = ar;
    public DecoderStageQueue? Decoder { get; } = decoder;
    public DateTime StartedUtc { get; } = DateTime.UtcNow;

    public WorkerInfo[] Workers() => new WorkerInfo?[] { Ar?.Info(), Decoder?.Info() }.OfType<WorkerInfo>().ToArray();

    public void Dispose() { Ar?.Dispose(); Decoder?.Dispose(); }
}

[StagePlacement, Reentrant]
internal sealed class NodeGrain(NodeServices node, ILocalSiloDetails silo) : Grain, INodeGrain
{
    public Task<NodeInfo> GetInfo() =>
        Task.FromResult(new NodeInfo(node.Name, silo.SiloAddress.ToParsableString(), node.Metadata, node.Workers(), node.StartedUtc));
}

/// <summary>Reentrant: many requests wait in one worker at once, so its queue can batch them.</summary>
[StagePlacement, Reentrant]
internal sealed class ArWorkerGrain(NodeServices node) : Grain, IArWorkerGrain
{
    public async Task<ArAnswer> Run(ArWork work, CancellationToken cancel = default)
    {
        if (node.Ar is null) return new ArAnswer(WorkStatus.Failed, $"node {node.Name} does not serve the ar stage", [], [], [], [], 0, 0);
        var task = node.Ar.TryEnqueue(work, cancel);
        return task is null ? new ArAnswer(WorkStatus.QueueFull, $"node {node.Name}'s ar queue is full ({node.Ar.Capacity})", [], [], [], [], 0, 0) : await task;
    }
}

[StagePlacement, Reentrant]
internal sealed class DecoderWorkerGrain(NodeServices node) : Grain, IDecoderWorkerGrain
{
    public async Task<DecoderAnswer> Run(DecoderWork work, CancellationToken cancel = default)
    {
        if (node.Decoder is null) return new DecoderAnswer(WorkStatus.Failed, $"node {node.Name} does not serve the decoder stage", [], 0, 0);
        var task = node.Decoder.TryEnqueue(work, cancel);
        return task is null ? new DecoderAnswer(WorkStatus.QueueFull, $"node {node.Name}'s decoder queue is full ({node.Decoder.Capacity})", [], 0, 0) : await task;
    }
}
