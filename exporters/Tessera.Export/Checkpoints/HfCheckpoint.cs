using System.Collections;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Tessera.Export.Checkpoints;

/// <summary>
/// A Hugging Face-style checkpoint folder: <c>config.json</c> plus weights as <c>model.safetensors</c>, safetensors
/// shards listed by <c>model.safetensors.index.json</c>, <c>pytorch_model.bin</c> (a <c>torch.save</c> state dict),
/// or <c>.bin</c> shards listed by <c>pytorch_model.bin.index.json</c> (diffusers names them
/// <c>diffusion_pytorch_model.*</c>; both are read). Safetensors wins when both are present.
/// Weights are read one file (shard) at a time, so at most one shard is in memory beside the model.
/// </summary>
public sealed class HfCheckpoint
{
    private HfCheckpoint(string directory, JsonObject config, IReadOnlyList<string> weightFiles, string format)
    {
        Directory = directory;
        Config = config;
        WeightFiles = weightFiles;
        Format = format;
    }

    public string Directory { get; }

    /// <summary>config.json as written (Hugging Face field names).</summary>
    public JsonObject Config { get; }

    /// <summary>The weight files, in the order they are read.</summary>
    public IReadOnlyList<string> WeightFiles { get; }

    /// <summary>"safetensors" or "pytorch".</summary>
    public string Format { get; }

    public static HfCheckpoint Open(string directory)
    {
        if (File.Exists(directory))
            throw new CheckpointException($"Checkpoint {directory} is a file; give the folder that holds config.json and the weights (model.safetensors or pytorch_model.bin).");
        if (!System.IO.Directory.Exists(directory))
            throw new CheckpointException($"Checkpoint folder {directory} does not exist.");
        var configPath = Path.Combine(directory, "config.json");
        if (!File.Exists(configPath))
            throw new CheckpointException($"Checkpoint {directory} has no config.json (the Hugging Face model configuration); a checkpoint folder holds config.json beside its weights.");
        JsonObject config;
        try
        {
            config = JsonNode.Parse(File.ReadAllText(configPath)) as JsonObject
                ?? throw new CheckpointException($"{configPath} is not a JSON object.");
        }
        catch (JsonException e)
        {
            throw new CheckpointException($"{configPath} is not valid JSON ({e.Message}).");
        }
        foreach (var (index, single, format) in new[]
                 {
                     ("model.safetensors.index.json", "model.safetensors", "safetensors"),
                     ("diffusion_pytorch_model.safetensors.index.json", "diffusion_pytorch_model.safetensors", "safetensors"), // diffusers' names
                     ("pytorch_model.bin.index.json", "pytorch_model.bin", "pytorch"),
                     ("diffusion_pytorch_model.bin.index.json", "diffusion_pytorch_model.bin", "pytorch"),
                 })
        {
            var indexPath = Path.Combine(directory, index);
            if (File.Exists(indexPath)) return new HfCheckpoint(directory, config, Shards(directory, indexPath), format);
            var singlePath = Path.Combine(directory, single);
            if (File.Exists(singlePath)) return new HfCheckpoint(directory, config, [singlePath], format);
        }
        throw new CheckpointException($"Checkpoint {directory} has no weights: expected model.safetensors, model.safetensors.index.json (shards), pytorch_model.bin or pytorch_model.bin.index.json.");
    }

    private static List<string> Shards(string directory, string indexPath)
    {
        JsonObject? map;
        try
        {
            map = JsonNode.Parse(File.ReadAllText(indexPath))?["weight_map"] as JsonObject;
        }
        catch (JsonException e)
        {
            throw new CheckpointException($"{indexPath} is not valid JSON ({e.Message}).");
        }
        if (map is null || map.Count == 0) throw new CheckpointException($"{indexPath} has no \"weight_map\" (tensor name → shard file).");
        var files = new List<string>();
        foreach (var (_, file) in map)
        {
            var name = file?.GetValue<string>() ?? "";
            var full = Path.GetFullPath(Path.Combine(directory, name));
            if (Path.GetDirectoryName(full) != Path.GetFullPath(directory).TrimEnd(Path.DirectorySeparatorChar))
                throw new CheckpointException($"{indexPath} names shard '{name}' outside the checkpoint folder; shards must sit beside the index.");
            if (!files.Contains(full)) files.Add(full);
        }
        foreach (var f in files)
            if (!File.Exists(f)) throw new CheckpointException($"Shard {Path.GetFileName(f)} listed in {Path.GetFileName(indexPath)} is missing from {directory}.");
        return files;
    }

    /// <summary>The tensors of each weight file in turn; the caller disposes them (or lets the scope of the loop do it).</summary>
    public IEnumerable<(string File, Dictionary<string, Tensor> Tensors)> ReadShards()
    {
        foreach (var file in WeightFiles)
        {
            Dictionary<string, Tensor> tensors;
            try
            {
                tensors = Format == "safetensors" ? Safetensors.LoadStateDict(file) : FromPickle(PyTorchUnpickler.UnpickleStateDict(file));
            }
            catch (Exception e) when (e is not CheckpointException)
            {
                throw new CheckpointException($"Weight file {file} could not be read as {(Format == "safetensors" ? "safetensors" : "a torch.save state dict")} ({e.GetType().Name}: {FirstLine(e.Message)}); it may be truncated or corrupt.");
            }
            yield return (file, tensors);
        }
    }

    private static Dictionary<string, Tensor> FromPickle(Hashtable table)
    {
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (DictionaryEntry e in table)
        {
            if (e.Key is not string name) continue;
            if (e.Value is Tensor t) result[name] = t;
            else throw new CheckpointException($"Entry '{name}' of the state dict is a {e.Value?.GetType().Name ?? "null"}, not a tensor; save the model's state_dict(), not the model object.");
        }
        return result;
    }

    private static string FirstLine(string s) => s.Split('\n')[0].Trim();
}

/// <summary>A checkpoint that cannot be used: the message names the file or tensors and what is wrong.</summary>
public sealed class CheckpointException(string message) : Tessera.Abstractions.TesseraException(message);
