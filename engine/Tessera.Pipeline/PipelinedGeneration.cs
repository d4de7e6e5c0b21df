using System.Threading.Channels;

namespace Tessera.Pipeline;

/// <summary>
/// Generates several prompts with the stages overlapped: while the decoder paints prompt k (on its device), the AR
/// writes the tokens of prompt k+1 (on its device). With the stages on disjoint devices (e.g. cpu:0 and cpu:1,
/// separate thread pools) the two run truly in parallel. Results come back in request order and equal those of
/// <see cref="ImageGenerator.Generate"/> for the same requests.
/// </summary>
public static class PipelinedGeneration
{
    public static IReadOnlyList<GenerationResult> Run(ImageGenerator generator, IReadOnlyList<GenerationRequest> requests, CancellationToken cancel = default)
    {
        var handoff = Channel.CreateBounded<(int Index, ImageGenerator.ArOutcome Ar)>(1);
        var results = new GenerationResult[requests.Count];
        var producer = Task.Run(() =>
        {
            try
            {
                for (int i = 0; i < requests.Count; i++)
                    handoff.Writer.WriteAsync((i, generator.RunArStage(requests[i], cancel: cancel)), cancel).AsTask().GetAwaiter().GetResult();
                handoff.Writer.Complete();
            }
            catch (Exception e)
            {
                handoff.Writer.Complete(e);
            }
        }, cancel);
        foreach (var (i, ar) in handoff.Reader.ReadAllAsync(cancel).ToBlockingEnumerable(cancel))
            results[i] = generator.RunDecoderStage(requests[i], ar, cancel: cancel);
        producer.GetAwaiter().GetResult();
        return results;
    }
}
