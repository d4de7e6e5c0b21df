using System.Threading.Channels;

namespace Tessera.Models.Training;

/// <summary>
/// Produces the batch for each step, either inline on the training thread or on a background thread that stays a
/// few steps ahead (so data work overlaps the optimizer step). The batch for a step depends only on the step,
/// which is what makes a resumed run see exactly the data an uninterrupted one would.
/// </summary>
public sealed class BatchSource<T> : IDisposable
{
    private readonly Func<long, T> _make;
    private readonly Channel<(long Step, T Batch)>? _channel;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task? _producer;

    public BatchSource(Func<long, T> make, long firstStep, long lastStep, bool background, int ahead = 3)
    {
        _make = make;
        Background = background;
        if (!background) return;
        _channel = Channel.CreateBounded<(long, T)>(new BoundedChannelOptions(ahead) { SingleReader = true, SingleWriter = true });
        _producer = Task.Factory.StartNew(async () =>
        {
            try
            {
                for (long s = firstStep; s <= lastStep && !_stop.IsCancellationRequested; s++)
                    await _channel.Writer.WriteAsync((s, _make(s)), _stop.Token);
                _channel.Writer.TryComplete();
            }
            catch (OperationCanceledException) { _channel.Writer.TryComplete(); }
            catch (Exception e) { _channel.Writer.TryComplete(e); }
        }, TaskCreationOptions.LongRunning).Unwrap();
    }

    public bool Background { get; }

    /// <summary>The batch for <paramref name="step"/> (steps must be asked for in order when in the background).</summary>
    public T Get(long step)
    {
        if (_channel is null) return _make(step);
        var (s, batch) = _channel.Reader.ReadAsync().AsTask().GetAwaiter().GetResult();
        if (s != step) throw new InvalidOperationException($"batch producer is at step {s}, trainer asked for {step}");
        return batch;
    }

    public void Dispose()
    {
        _stop.Cancel();
        try { _producer?.Wait(TimeSpan.FromSeconds(5)); } catch (AggregateException) { }
        _stop.Dispose();
    }
}
