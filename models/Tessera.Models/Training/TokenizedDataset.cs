using System.Security.Cryptography;
using System.Text;
using Tessera.Data;
using Tessera.Datasets;
using Tessera.Models.Vq;
using static TorchSharp.torch;

namespace Tessera.Models.Training;

/// <summary>
/// The VQ codes of the first N training samples (seed, split Train), made once with a trained VQ and cached beside
/// it as <c>tokens-*.bin</c>. The AR learns to write these codes; the decoder gets them as its prior.
/// The cache is keyed by the VQ checkpoint, dataset seed, image size and N, so a retrained VQ makes a new file.
/// </summary>
public sealed class TokenizedDataset
{
    private readonly short[] _codes;

    private TokenizedDataset(short[] codes, int count, int grid, int codebookSize)
    {
        _codes = codes;
        Count = count;
        Grid = grid;
        CodebookSize = codebookSize;
    }

    public int Count { get; }
    public int Grid { get; }
    public int CodebookSize { get; }

    /// <summary>Codes of sample <paramref name="index"/>, row-major (Grid * Grid).</summary>
    public int[] Codes(int index) => _codes.AsSpan(index * Grid * Grid, Grid * Grid).ToArray().Select(c => (int)c).ToArray();

    public static TokenizedDataset LoadOrBuild(string vqRun, ulong seed, int count, TextWriter log)
    {
        var (vq, checkpoint, step) = TrainedWeights.LoadVq(vqRun, log);
        var cfg = vq.Config;
        var key = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(
            $"{Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(checkpoint)))}|{seed}|{cfg.ImageSize}|{count}")))[..16];
        var path = Path.Combine(vqRun, $"tokens-{key}.bin");
        int g = cfg.GridSize, n = g * g;
        if (File.Exists(path) && new FileInfo(path).Length == (long)count * n * 2)
        {
            var bytes = File.ReadAllBytes(path);
            return new TokenizedDataset(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, short>(bytes).ToArray(), count, g, cfg.CodebookSize);
        }

        log.WriteLine($"tokenizing {count} training samples with {checkpoint} (step {step}) into {path}");
        var codes = new short[count * n];
        var generator = new SampleGenerator(seed, cfg.ImageSize);
        const int chunk = 256;
        var watch = System.Diagnostics.Stopwatch.StartNew();
        for (int start = 0; start < count; start += chunk)
        {
            int m = Math.Min(chunk, count - start);
            using var batch = ImageBatch.Render(generator, DataSplit.Train, start, m);
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            var c = vq.Tokenize(batch.Images).to(ScalarType.Int16).contiguous();
            c.data<short>().CopyTo(codes, start * n);
            if ((start / chunk) % 20 == 0) log.WriteLine($"  {start + m}/{count} samples ({(start + m) / watch.Elapsed.TotalSeconds:F0}/s)");
        }
        var temp = path + ".tmp";
        File.WriteAllBytes(temp, System.Runtime.InteropServices.MemoryMarshal.AsBytes(codes.AsSpan()).ToArray());
        File.Move(temp, path, overwrite: true);
        return new TokenizedDataset(codes, count, g, cfg.CodebookSize);
    }
}
