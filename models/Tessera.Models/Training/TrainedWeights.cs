using System.Text.Json;
using Tessera.Models.Vq;
using TorchSharp;
using static TorchSharp.torch;

namespace Tessera.Models.Training;

/// <summary>Loads a finished (or in-progress) run's EMA weights into a fresh module, for tokenizing, export or evaluation.</summary>
public static class TrainedWeights
{
    /// <summary>The newest valid checkpoint of a run folder, with its step; errors say which folder and what to do.</summary>
    public static (string Path, long Step, string ModelConfigJson, Dictionary<string, Tensor> Tensors, string? Stage) Latest(string runDirectory, TextWriter? log = null)
    {
        var store = new CheckpointStore(Path.Combine(runDirectory, "checkpoints"));
        var latest = store.LoadLatest(m => log?.WriteLine($"warning: {m}"))
            ?? throw new FileNotFoundException($"No usable checkpoint in {store.Directory}. Train the stage first (tessera train ... --out {runDirectory}).");
        return (latest.Path, latest.Metadata["step"]!.GetValue<long>(), latest.Metadata["modelConfig"]!.GetValue<string>(), latest.Tensors, latest.Metadata["stage"]?.GetValue<string>());
    }

    /// <summary>Copies the EMA weights ("ema.*") and buffers ("buffer.*") of a checkpoint into <paramref name="model"/>.</summary>
    public static void LoadEma(nn.Module model, IReadOnlyDictionary<string, Tensor> tensors)
    {
        using var _ = no_grad();
        foreach (var (name, p) in model.named_parameters()) AdamWEma.Copy(tensors, $"ema.{name}", p);
        foreach (var (name, b) in model.named_buffers()) AdamWEma.Copy(tensors, $"buffer.{name}", b);
    }

    /// <summary>
    /// Starts <paramref name="model"/> from another run's EMA weights: equal shapes are copied; a tensor whose only
    /// difference is a larger second dimension (a layer that gained input channels) gets the trained slice and zeros
    /// elsewhere. Any other mismatch is an error naming the tensor.
    /// </summary>
    public static long InitFrom(nn.Module model, string runDirectory, TextWriter? log = null)
    {
        var (path, step, _, tensors, _) = Latest(runDirectory, log);
        using (no_grad())
            foreach (var (name, p) in model.named_parameters().Select(x => (x.name, (Tensor)x.parameter)).Concat(model.named_buffers().Select(x => (x.name, x.buffer))))
            {
                if (!tensors.TryGetValue($"ema.{name}", out var saved) && !tensors.TryGetValue($"buffer.{name}", out saved))
                    throw new TrainingCheckpointException($"{path} has no tensor for '{name}'; initFrom needs a run of the same network.");
                if (saved.shape.SequenceEqual(p.shape)) p.copy_(saved);
                else if (saved.dim() == p.dim() && saved.dim() >= 2 && saved.shape[0] == p.shape[0] && saved.shape[1] < p.shape[1]
                         && saved.shape.Skip(2).SequenceEqual(p.shape.Skip(2)))
                {
                    p.zero_();
                    p.narrow(1, 0, saved.shape[1]).copy_(saved);
                    log?.WriteLine($"initFrom: {name} widened from {saved.shape[1]} to {p.shape[1]} inputs (new ones start at zero)");
                }
                else
                    throw new TrainingCheckpointException($"'{name}' is [{string.Join(", ", saved.shape)}] in {path} but [{string.Join(", ", p.shape)}] here; initFrom can only widen inputs.");
            }
        foreach (var t in tensors.Values) t.Dispose();
        log?.WriteLine($"initFrom: started from {path} (step {step})");
        return step;
    }

    /// <summary>The trained VQ tokenizer of a run (EMA weights), in eval mode.</summary>
    public static (VqTokenizer Model, string CheckpointPath, long Step) LoadVq(string runDirectory, TextWriter? log = null)
    {
        var (path, step, json, tensors, _) = Latest(runDirectory, log);
        var config = JsonSerializer.Deserialize<VqConfig>(json, StageConfig.Json)!;
        var model = new VqTokenizer(config);
        LoadEma(model, tensors);
        foreach (var t in tensors.Values) t.Dispose();
        model.eval();
        return (model, path, step);
    }
}
