using Orleans;
using Orleans.Placement;
using Orleans.Runtime;
using Orleans.Runtime.MembershipService.SiloMetadata;
using Orleans.Runtime.Placement;

namespace Tessera.Cluster;

/// <summary>
/// Places Tessera's grains: a node grain on the silo its key names, a stage worker only on the silo its key names
/// and only if that silo's metadata says it serves the stage with the model loaded. Anything else is refused
/// (an exception the caller sees at once), so a worker never activates on a node without its stage.
/// </summary>
[GenerateSerializer, Immutable]
public sealed class StagePlacementStrategy : PlacementStrategy
{
    public static readonly StagePlacementStrategy Instance = new();
}

[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class StagePlacementAttribute() : PlacementAttribute(StagePlacementStrategy.Instance);

/// <summary>The placement rule above, read from Orleans silo metadata (what each <c>tessera node</c> published).</summary>
public sealed class StagePlacementDirector(ISiloMetadataCache metadata) : IPlacementDirector
{
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        var key = target.GrainIdentity.Key.ToString()!;
        var (kind, silo, _) = WorkerKeys.Parse(key);
        var wanted = context.GetCompatibleSilos(target).FirstOrDefault(s => s.ToParsableString() == silo)
            ?? throw new OrleansException($"Node {silo} is not an active member of the cluster; '{key}' cannot be placed there.");
        if (kind == "node") return Task.FromResult(wanted);
        var m = metadata.GetSiloMetadata(wanted).Metadata;
        var stages = m.GetValueOrDefault(NodeMetadata.Stages)?.Split(',') ?? [];
        if (!stages.Contains(kind))
            throw new OrleansException($"Node {silo} does not serve the {kind} stage (its stages: {(stages.Length == 0 ? "not yet known" : string.Join(",", stages))}); '{key}' is not placed there.");
        if (string.IsNullOrEmpty(m.GetValueOrDefault(NodeMetadata.ModelHash)))
            throw new OrleansException($"Node {silo} has no model loaded; '{key}' is not placed there.");
        return Task.FromResult(wanted);
    }
}
