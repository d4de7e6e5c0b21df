namespace Tessera.Pipeline.Batching;

/// <summary>
/// What the HTTP server generates through: one process's <see cref="BatchingGenerator"/>, or a cluster client
/// (<c>Tessera.Cluster.ClusterGenerator</c>) that runs each request's stages on other machines.
/// </summary>
public interface IImageQueue
{
    /// <summary>The model package requests are checked against (the cluster front's copy has the nodes' hash).</summary>
    ModelPackage Package { get; }
    BatchingOptions Options { get; }
    BatchingMetrics Metrics { get; }
    /// <summary>Where each stage runs, for /health: a device id here, "cluster (N nodes)" for a cluster.</summary>
    string ArPlacement { get; }
    string DecoderPlacement { get; }

    /// <summary>
    /// Queues a request: <see cref="QueueFullException"/> when no queue has room, <see cref="StageUnavailableException"/>
    /// when nothing can run one of its stages, <see cref="GenerationParameterException"/> for a bad parameter.
    /// </summary>
    Task<GenerationResult> GenerateAsync(GenerationRequest request, IProgress<GenerationProgress>? progress = null, CancellationToken cancel = default);
}
