using System.Collections.Concurrent;
using System.Diagnostics;
using Tessera.Pipeline;
using Tessera.Pipeline.Batching;

namespace Tessera.Cluster;

/// <summary>
/// One stage of one node's <see cref="ImageGenerator"/> with continuous batching, as <see cref="BatchingGenerator"/>
/// does for both stages in one process: a thread advances every active request by one model run, requests join
/// and leave between runs, and each keeps its own seed (so a request's bytes do not depend on its batch-mates
/// on the CPU execution provider; see docs/serving.md).
/// </summary>
public abstract class StageQueue<TWork, TAnswer> : IDisposable where TWork : class
{
    protected sealed class Item(TWork work, CancellationToken cancel)
    {
        public TWork Work { get; } = work;
        public CancellationToken Cancel { get; } = cancel;
        public TaskCompletionSource<TAnswer> Answer { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public Stopwatch Clock { get; } = Stopwatch.StartNew();
        public object? State;
    }

    private readonly ConcurrentQueue<Item> _queue = new();
    private readonly SemaphoreSlim _signal = new(0);
    private readonly CancellationTokenSource _stop = new();
    private readonly Thread _thread;
    private int _queued, _active;
    private long _completed, _failed;

    protected StageQueue(string stage, string device, int maxBatch, int capacity)
    {
        Stage = stage; Device = device; MaxBatch = maxBatch; Capacity = capacity;
        _thread = new Thread(Loop) { IsBackground = true, Name = $"tessera-{stage}" };
        _thread.Start();
    }

    public string Stage { get; }
    public string Device { get; }
    public int MaxBatch { get; }
    public int Capacity { get; }

    public WorkerInfo Info() => new(Stage, Device, Volatile.Read(ref _active), Volatile.Read(ref _queued), Capacity,
        Interlocked.Read(ref _completed), Interlocked.Read(ref _failed));

    /// <summary>Queues work; null when the queue is full (the caller tries another node or answers 429).</summary>
    public Task<TAnswer>? TryEnqueue(TWork work, CancellationToken cancel)
    {
        ObjectDisposedException.ThrowIf(_stop.IsCancellationRequested, this);
        if (Interlocked.Increment(ref _queued) > Capacity) { Interlocked.Decrement(ref _queued); return null; }
        var item = new Item(work, cancel);
        _queue.Enqueue(item);
        _signal.Release();
        return item.Answer.Task;
    }

    /// <summary>Starts an item's model state (prompt encoding, noise), or throws for bad work.</summary>
    protected abstract void Start(Item item);
    /// <summary>One model run over every active item.</summary>
    protected abstract void Step(IReadOnlyList<Item> active);
    protected abstract bool Finished(Item item);
    protected abstract TAnswer Finish(Item item);
    protected abstract TAnswer Refuse(WorkStatus status, string error);
    /// <summary>Called on the stage's thread when no item is left active (e.g. to free batch state of cancelled items).</summary>
    protected virtual void Idle() { }
    /// <summary>Called once the stage's thread has ended: free the stage's model state.</summary>
    protected virtual void Release() { }

    private void Loop()
    {
        var active = new List<Item>();
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                if (active.Count == 0) _signal.Wait(_stop.Token);
                while (active.Count < MaxBatch && _queue.TryDequeue(out var item))
                {
                    Interlocked.Decrement(ref _queued);
                    if (item.Cancel.IsCancellationRequested) { item.Answer.TrySetResult(Refuse(WorkStatus.Cancelled, "cancelled")); continue; }
                    try { Start(item); active.Add(item); }
                    catch (Exception e) { Fail(item, e); }
                }
                foreach (var c in active.Where(i => i.Cancel.IsCancellationRequested).ToList())
                {
                    active.Remove(c);
                    c.Answer.TrySetResult(Refuse(WorkStatus.Cancelled, "cancelled"));
                }
                Volatile.Write(ref _active, active.Count);
                if (active.Count == 0) { Idle(); continue; }
                try { Step(active); }
                catch (Exception e)
                {
                    foreach (var i in active) Fail(i, e);
                    active.Clear();
                    Idle();
                    continue;
                }
                foreach (var i in active.Where(Finished).ToList())
                {
                    active.Remove(i);
                    try { i.Answer.TrySetResult(Finish(i)); Interlocked.Increment(ref _completed); }
                    catch (Exception e) { Fail(i, e); }
                }
                Volatile.Write(ref _active, active.Count);
                if (active.Count == 0) Idle(); // nothing left in the batch: free its state now, not at the next request
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested) { }
        finally
        {
            foreach (var i in active) i.Answer.TrySetResult(Refuse(WorkStatus.Cancelled, "the node is stopping"));
        }
    }

    private void Fail(Item item, Exception e)
    {
        Interlocked.Increment(ref _failed);
        item.Answer.TrySetResult(Refuse(WorkStatus.Failed, e.Message));
    }

    public void Dispose()
    {
        if (_stop.IsCancellationRequested) return;
        _stop.Cancel();
        _thread.Join();
        while (_queue.TryDequeue(out var i)) i.Answer.TrySetResult(Refuse(WorkStatus.Cancelled, "the node is stopping"));
        Release();
        _stop.Dispose();
    }
}

/// <summary>The AR stage of a node: prompt → preview and target token ids, glyph text.</summary>
public sealed class ArStageQueue(ImageGenerator generator, int maxBatch, int capacity)
    : StageQueue<ArWork, ArAnswer>(Stages.Ar, generator.ArDevice.ToString(), maxBatch, capacity)
{
    private readonly ArBatch _ar = generator.CreateArBatch();

    private sealed record State(ImageGenerator.PreparedRequest Prepared, ArBatch.ArSequence Sequence, TimeSpan Started);

    protected override void Start(Item item)
    {
        var w = item.Work;
        var prepared = generator.Prepare(new GenerationRequest(w.Prompt) { Seed = w.Seed, Temperature = w.Temperature, TopK = w.TopK, TopP = w.TopP, SourceRgb = w.SourceRgb });
        item.State = new State(prepared, _ar.Start(prepared.Prompt, prepared.Sampler, prepared.ForcedPreview), item.Clock.Elapsed);
    }

    protected override void Step(IReadOnlyList<Item> active) => _ar.Step(active.Select(i => ((State)i.State!).Sequence).ToList());
    protected override bool Finished(Item item) => ((State)item.State!).Sequence.Finished;

    protected override ArAnswer Finish(Item item)
    {
        var s = (State)item.State!;
        var visual = s.Sequence.Visual;
        return new ArAnswer(WorkStatus.Ok, null, visual[.._ar.Layout.PreviewTokens], visual[_ar.Layout.PreviewTokens..], s.Prepared.Prompt.Glyphs,
            s.Prepared.Warnings.ToArray(), s.Prepared.Encode.TotalMilliseconds, (item.Clock.Elapsed - s.Started).TotalMilliseconds);
    }

    protected override ArAnswer Refuse(WorkStatus status, string error) => new(status, error, [], [], [], [], 0, 0);
    protected override void Idle() => _ar.Clear(); // the KV-cache rows of items that left without finishing
    protected override void Release() => _ar.Dispose();
}

/// <summary>The decoder stage of a node: target token ids + glyph text + seed → PNG.</summary>
public sealed class DecoderStageQueue(ImageGenerator generator, int maxBatch, int capacity)
    : StageQueue<DecoderWork, DecoderAnswer>(Stages.Decoder, generator.DecoderDevice.ToString(), maxBatch, capacity)
{
    private sealed record State(DecoderStage.Job Job, TimeSpan Started);

    protected override void Start(Item item)
    {
        var w = item.Work;
        var request = new GenerationRequest("") { Steps = w.Steps, Cfg = w.Cfg, Sampler = w.Sampler };
        var (steps, cfg, shift) = generator.DecoderSettings(request);
        var grid = generator.Package.Manifest.Ar.TargetGrid;
        if (w.TargetTokens.Length != grid * grid)
            throw new ArgumentException($"The decoder got {w.TargetTokens.Length} target tokens; this model's target grid is {grid}x{grid} = {grid * grid}.");
        item.State = new State(generator.Decoder.Start(w.TargetTokens, grid, w.Glyphs, w.Seed, steps, cfg, shift, generator.DecoderSampler(request)), item.Clock.Elapsed);
    }

    protected override void Step(IReadOnlyList<Item> active) => generator.Decoder.Step(active.Select(i => ((State)i.State!).Job).ToList());
    protected override bool Finished(Item item) => ((State)item.State!).Job.Finished;

    protected override DecoderAnswer Finish(Item item)
    {
        var s = (State)item.State!;
        var timings = new StageTimings(TimeSpan.Zero, TimeSpan.Zero, TimeSpan.Zero, 0, item.Clock.Elapsed - s.Started, s.Job.Steps);
        var result = generator.Finish(s.Job.X, [], item.Work.TargetTokens, timings, []);
        return new DecoderAnswer(WorkStatus.Ok, null, result.Png, s.Job.Steps, (item.Clock.Elapsed - s.Started).TotalMilliseconds);
    }

    protected override DecoderAnswer Refuse(WorkStatus status, string error) => new(status, error, [], 0, 0);
}
