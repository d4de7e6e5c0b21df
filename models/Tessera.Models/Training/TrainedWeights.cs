using System.Text.Json;
using Tessera.Models.Vq;
using TorchSharp;
using static TorchSharp.torch;

namespace Tessera.Models.Training;

/// <summary>Loads a finished (or in-progress) run's EMA weights into a fresh module, for tokenizing, export or evaluation.</summary>
public static class TrainedWeights
{
    /// <summary>The newest valid checkpoint of a run folder, with its step; errors say which folder and what to do.</summary>
    public static (string Path, long Step, string ModelConfigJson, Dictionary<string, Tensor> Tensors) Latest(string runDirectory, TextWriter? log = null)
    {
        var store = new CheckpointStore(Path.Combine(runDirectory, "checkpoints"));
        var latest = store.LoadLatest(m => log?.WriteLine($"warning: {m}"))
            ?? throw new FileNotFoundException($"No usable checkpoint in {store.Directory}. Train the stage first (tessera train ... --out {runDirectory}).");
        return (latest.Path, latest.Metadata["step"]!.GetValue<long>(), latest.Metadata["modelConfig"]!.GetValue<string>(), latest.Tensors);
    }

    /// <summary>Copies the EMA weights ("ema.*") and buffers ("buffer.*") of a checkpoint into <paramref name="model"/>.</summary>
    public static void LoadEma(nn.Module model, IReadOnlyDictionary<string, Tensor> tensors)
    {
        using var _ = no_grad();
        foreach (var (name, p) in model.named_parameters()) AdamWEma.Copy(tensors, $"ema.{name}", p);
        foreach (var (name, b) in model.named_buffers()) AdamWEma.Copy(tensors, $"buffer.{name}", b);
    }

    /// <summary>The trained VQ tokenizer of a run (EMA weights), in eval mode.</summary>
    public static (VqTokenizer Model, string CheckpointPath, long Step) LoadVq(string runDirectory, TextWriter? log = null)
    {
        var (path, step, json, tensors) = Latest(runDirectory, log);
        var config = JsonSerializer.Deserialize<VqConfig>(json, StageConfig.Json)!;
        var model = new VqTokenizer(config);
        LoadEma(model, tensors);
        foreach (var t in tensors.Values) t.Dispose();
        model.eval();
        return (model, path, step);
    }
}
