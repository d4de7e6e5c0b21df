using Tessera.Pipeline;
using Tessera.Pipeline.Batching;

namespace Tessera.Server.Tests;

/// <summary>
/// An <see cref="IImageQueue"/> in front of a batching generator that, while closed, holds the stage thread at a
/// request's first progress report (after the first AR step) until the gate opens or that request is cancelled. A
/// test can then time out, disconnect or fill the queue with a request certainly in flight, whatever the CPU speed.
/// </summary>
internal sealed class StageGate(IImageQueue inner) : IImageQueue
{
    private readonly ManualResetEventSlim _open = new(initialState: false);
    private readonly SemaphoreSlim _held = new(0);

    public ModelPackage Package => inner.Package;
    public BatchingOptions Options => inner.Options;
    public BatchingMetrics Metrics => inner.Metrics;
    public string ArPlacement => inner.ArPlacement;
    public string DecoderPlacement => inner.DecoderPlacement;

    /// <summary>Lets every held and later request through.</summary>
    public void Open() => _open.Set();

    /// <summary>Returns once a request is held at the gate (fails after a minute).</summary>
    public async Task WaitUntilHeld()
    {
        if (!await _held.WaitAsync(TimeSpan.FromMinutes(1))) Assert.Fail("no request reached the gate within a minute");
    }

    public Task<GenerationResult> GenerateAsync(GenerationRequest request, IProgress<GenerationProgress>? progress = null, CancellationToken cancel = default) =>
        inner.GenerateAsync(request, new Hold(this, progress, cancel), cancel);

    /// <summary>Reports are made on the stage's own thread, so blocking here holds the stage.</summary>
    private sealed class Hold(StageGate gate, IProgress<GenerationProgress>? next, CancellationToken cancel) : IProgress<GenerationProgress>
    {
        public void Report(GenerationProgress value)
        {
            if (!gate._open.IsSet)
            {
                gate._held.Release();
                WaitHandle.WaitAny([gate._open.WaitHandle, cancel.WaitHandle]);
            }
            next?.Report(value);
        }
    }
}
