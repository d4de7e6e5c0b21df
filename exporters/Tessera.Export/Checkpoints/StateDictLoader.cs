using TorchSharp;
using static TorchSharp.torch;

namespace Tessera.Export.Checkpoints;

/// <summary>What loading a checkpoint into a module consumed and left out.</summary>
/// <param name="Consumed">Checkpoint tensor names copied into the module.</param>
/// <param name="Ignored">Checkpoint tensor names known to carry nothing the module needs (e.g. a precomputed causal mask buffer).</param>
/// <param name="Derived">Module tensors not in the checkpoint by design (a tied output head).</param>
public sealed record LoadReport(IReadOnlyList<string> Consumed, IReadOnlyList<string> Ignored, IReadOnlyList<string> Derived);

/// <summary>
/// Copies a checkpoint's tensors into a module's parameters by name (cast to the module's dtype), one shard at a
/// time. Every module tensor must be supplied exactly once with its shape, and every checkpoint tensor must be used
/// or known to be ignorable; otherwise nothing is exported and the error lists each missing, unexpected and
/// mis-shaped tensor by name.
/// </summary>
public static class StateDictLoader
{
    /// <param name="rename">Checkpoint name → module name (documented per architecture); identity when null.</param>
    /// <param name="ignore">Checkpoint names to skip without error.</param>
    /// <param name="optional">Module names that may be absent from the checkpoint (their value is derived, e.g. tied weights).</param>
    public static LoadReport Load(nn.Module module, string checkpointName, IEnumerable<(string File, Dictionary<string, Tensor> Tensors)> shards,
        Func<string, string>? rename = null, Func<string, bool>? ignore = null, Func<string, bool>? optional = null)
    {
        var targets = module.state_dict();
        var consumed = new List<string>();
        var ignored = new List<string>();
        var unexpected = new List<string>();
        var misShaped = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        using (no_grad())
            foreach (var (file, tensors) in shards)
            {
                foreach (var (name, source) in tensors.OrderBy(kv => kv.Key, StringComparer.Ordinal))
                {
                    using var _ = source;
                    if (ignore?.Invoke(name) == true)
                    {
                        ignored.Add(name);
                        continue;
                    }
                    var target = rename?.Invoke(name) ?? name;
                    if (!targets.TryGetValue(target, out var dest))
                    {
                        unexpected.Add(name);
                        continue;
                    }
                    if (!source.shape.SequenceEqual(dest.shape))
                    {
                        misShaped.Add($"{name}: checkpoint [{string.Join(", ", source.shape)}], model [{string.Join(", ", dest.shape)}]");
                        continue;
                    }
                    if (!seen.Add(target)) throw new CheckpointException($"Checkpoint {checkpointName}: tensor '{name}' appears in more than one weight file ({Path.GetFileName(file)} is the second).");
                    dest.copy_(source.to(dest.dtype));
                    consumed.Add(name);
                }
            }
        var derived = targets.Keys.Where(k => !seen.Contains(k) && optional?.Invoke(k) == true).ToList();
        var missing = targets.Keys.Where(k => !seen.Contains(k) && optional?.Invoke(k) != true).ToList();
        if (missing.Count + unexpected.Count + misShaped.Count > 0)
        {
            var parts = new List<string>();
            if (missing.Count > 0) parts.Add($"missing {Count(missing.Count)} ({List(missing)})");
            if (unexpected.Count > 0) parts.Add($"unexpected {Count(unexpected.Count)} ({List(unexpected)})");
            if (misShaped.Count > 0) parts.Add($"wrong shape {Count(misShaped.Count)} ({List(misShaped)})");
            throw new CheckpointException($"Checkpoint {checkpointName} does not fit the model its config.json describes: {string.Join("; ", parts)}. " +
                                          "Check that config.json belongs to these weights.");
        }
        return new LoadReport(consumed, ignored, derived);
    }

    private static string Count(int n) => n == 1 ? "1 tensor" : $"{n} tensors";

    private static string List(List<string> names) =>
        names.Count <= 8 ? string.Join(", ", names) : $"{string.Join(", ", names.Take(8))} and {names.Count - 8} more";
}
