using Tessera.Data;
using Tessera.Datasets;
using static TorchSharp.torch;

namespace Tessera.Models.Training;

/// <summary>
/// A batch of rendered samples. Pixels are prepared as floats on the producer thread; the tensor is made on first
/// use on the training thread.
/// </summary>
public sealed class ImageBatch : IDisposable
{
    private Tensor? _images;

    public ImageBatch(IReadOnlyList<DataSample> samples, float[] pixels)
    {
        Samples = samples;
        Pixels = pixels;
    }

    public IReadOnlyList<DataSample> Samples { get; }

    /// <summary>(B, 3, S, S) in [-1, 1], channel-first.</summary>
    public float[] Pixels { get; }

    public Tensor Images
    {
        get
        {
            if (_images is null)
            {
                int s = Samples[0].Size;
                _images = tensor(Pixels, [Samples.Count, 3, s, s]);
                _images.DetachFromDisposeScope();
            }
            return _images;
        }
    }

    /// <summary>Renders samples [first, first + count) of a split into a batch.</summary>
    public static ImageBatch Render(SampleGenerator generator, DataSplit split, long first, int count)
    {
        var samples = new DataSample[count];
        var pixels = new float[count * 3 * generator.Size * generator.Size];
        Parallel.For(0, count, i =>
        {
            samples[i] = generator.Sample(split, first + i);
            ModelInputs.ToChannelFirst(samples[i].Rgb, pixels.AsSpan(i * 3 * generator.Size * generator.Size, 3 * generator.Size * generator.Size));
        });
        return new ImageBatch(samples, pixels);
    }

    public void Dispose() => _images?.Dispose();
}
