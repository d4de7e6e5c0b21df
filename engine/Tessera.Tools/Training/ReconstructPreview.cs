using Tessera.Data;
using Tessera.Datasets;
using Tessera.Models.Training;
using static TorchSharp.torch;
using Tessera.Cli;
using Tessera.Cli.Bench;

namespace Tessera.Tools.Training;

/// <summary>
/// <c>tessera data reconstruct</c>: validation samples next to their VQ reconstruction (image → 8x8 codes → image),
/// to see what the tokenizer keeps — the ceiling for everything the AR writes.
/// </summary>
public static class ReconstructPreview
{
    public static int Run(string vqRun, int n, ulong seed, string output)
    {
        var (vq, checkpoint, step) = TrainedWeights.LoadVq(vqRun, Console.Error);
        var generator = new SampleGenerator(seed, vq.Config.ImageSize);
        using var batch = ImageBatch.Render(generator, DataSplit.Validation, 0, n);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var codes = vq.Tokenize(batch.Images);
        var recon = vq.Detokenize(codes).clamp(-1, 1);
        double mse = nn.functional.mse_loss(recon, batch.Images).item<float>();
        var pixels = ((recon + 1) * 127.5f).round().to(ScalarType.Byte).permute(0, 2, 3, 1).contiguous().data<byte>().ToArray();
        int s = vq.Config.ImageSize, plane = s * s * 3;
        var items = new List<(byte[], int, string)>();
        for (int i = 0; i < n; i++)
        {
            items.Add((batch.Samples[i].Rgb, s, $"original: {batch.Samples[i].Word}"));
            items.Add((pixels.AsSpan(i * plane, plane).ToArray(), s, $"VQ {vq.Config.GridSize}x{vq.Config.GridSize} codes"));
        }
        File.WriteAllBytes(output, ContactSheet.Render(items, columns: 6));
        Console.WriteLine($"wrote {output}: {n} validation samples and their reconstructions from {checkpoint} (step {step}); MSE {mse:F4} on [-1, 1] pixels");
        return 0;
    }
}
