namespace Tessera.Pipeline.Batching;

/// <summary>No worker anywhere can run a stage (in a cluster: no live node serves it); HTTP 503.</summary>
public sealed class StageUnavailableException(string stage, string message) : Exception(message)
{
    /// <summary>"ar" or "decoder".</summary>
    public string Stage { get; } = stage;
}
