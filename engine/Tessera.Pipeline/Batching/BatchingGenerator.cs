using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Tessera.Pipeline.Batching;

/// <summary>How requests are batched and bounded.</summary>
public sealed record BatchingOptions
{
    /// <summary>Most requests in one AR decode step.</summary>
    public int MaxArBatch { get; init; } = 8;
    /// <summary>Most images in one decoder step (each is 2 rows of the model's batch with guidance).</summary>
    public int MaxDecoderBatch { get; init; } = 8;
    /// <summary>Requests waiting to start, beyond which new ones are refused (HTTP 429).</summary>
    public int QueueCapacity { get; init; } = 64;
    /// <summary>After an idle stage wakes, how long it waits for more requests to join the first step.</summary>
    public TimeSpan Window { get; init; } = TimeSpan.FromMilliseconds(5);

    /// <summary>One request at a time per stage: what batching is measured against.</summary>
    public static BatchingOptions Off => new() { MaxArBatch = 1, MaxDecoderBatch = 1, Window = TimeSpan.Zero };

    public void Validate()
    {
        if (MaxArBatch < 1 || MaxArBatch > 256) throw new ArgumentException($"The AR batch size must be 1-256 (got {MaxArBatch}).");
        if (MaxDecoderBatch < 1 || MaxDecoderBatch > 256) throw new ArgumentException($"The decoder batch size must be 1-256 (got {MaxDecoderBatch}).");
        if (QueueCapacity < 1) throw new ArgumentException($"The queue capacity must be at least 1 (got {QueueCapacity}).");
        if (Window < TimeSpan.Zero || Window > TimeSpan.FromSeconds(10)) throw new ArgumentException($"The batching window must be 0-10 s (got {Window}).");
    }
}

/// <summary>The queue is full: the caller should retry later.</summary>
public sealed class QueueFullException(int capacity, TimeSpan retryAfter)
    : Exception($"The server is at capacity ({capacity} requests waiting); retry in {Math.Ceiling(retryAfter.TotalSeconds)} s.")
{
    public TimeSpan RetryAfter { get; } = retryAfter;
}

/// <summary>
/// The serving metrics of one queue (queue depth, active requests, outcomes, batch sizes, per-stage latency, tokens),
/// published as System.Diagnostics.Metrics instruments on <see cref="Meter"/> (name <see cref="MeterName"/>, scope this
/// object, so several queues in one process stay apart) for any listener: OpenTelemetry, dotnet-counters, or the
/// server's Prometheus endpoint. The queue also reads a few of them back (queue depth, mean latency for Retry-After).
/// </summary>
public sealed class BatchingMetrics : IDisposable
{
    /// <summary>The meter's name; with the instruments' names it gives the Prometheus names (tessera_queue_depth, …).</summary>
    public const string MeterName = "tessera";

    /// <summary>Request outcomes counted by <see cref="RecordRequest"/>.</summary>
    public static readonly string[] RequestOutcomes = ["completed", "failed", "cancelled", "rejected", "invalid", "timeout"];

    /// <summary>Bucket bounds of the batch-size histograms.</summary>
    public static readonly int[] BatchSizeBuckets = [1, 2, 4, 8, 16, 32, 64, 128, 256];

    private long _tokens, _completed, _failed, _cancelled, _rejected;
    private readonly object _gate = new();
    private readonly Dictionary<string, (double Sum, long Count)> _latency = new();
    private int _largestAr, _largestDecoder;
    private double _arBusy;
    private readonly Histogram<int> _arBatch, _decoderBatch;
    private readonly Histogram<double> _stageLatency;
    private long _arSteps, _arRows, _decoderSteps, _decoderImages;
    private long _arHostBytesKv, _arHostBytesOther, _arCountedSteps;

    internal int QueueDepthNow;
    internal int ArActive, DecoderActive;

    public BatchingMetrics()
    {
        Meter = new Meter(new MeterOptions(MeterName) { Scope = this });
        Meter.CreateObservableGauge("queue_depth", () => QueueDepth, description: "Requests waiting to start.");
        Meter.CreateObservableGauge("active_requests", () => new[]
        {
            new Measurement<int>(Volatile.Read(ref ArActive), new KeyValuePair<string, object?>("stage", "ar")),
            new Measurement<int>(Volatile.Read(ref DecoderActive), new KeyValuePair<string, object?>("stage", "decoder")),
        }, description: "Requests in a stage.");
        Meter.CreateObservableCounter("requests_total", () => RequestOutcomes.Select(o => new Measurement<long>(Requests(o), new KeyValuePair<string, object?>("outcome", o))),
            description: "API requests by outcome (one request may ask for several images).");
        Meter.CreateObservableCounter("images_total", () => new[]
        {
            Outcome(Completed, "completed"), Outcome(Failed, "failed"), Outcome(Cancelled, "cancelled"), Outcome(Rejected, "rejected"),
        }, description: "Images by outcome.");
        _arBatch = Meter.CreateHistogram("ar_batch_size", unit: null, description: "Requests per AR step.", tags: null,
            advice: new InstrumentAdvice<int> { HistogramBucketBoundaries = BatchSizeBuckets });
        _decoderBatch = Meter.CreateHistogram("decoder_batch_size", unit: null, description: "Images per decoder step.", tags: null,
            advice: new InstrumentAdvice<int> { HistogramBucketBoundaries = BatchSizeBuckets });
        _stageLatency = Meter.CreateHistogram<double>("stage_latency_seconds", unit: "s", description: "Per-request time in each stage (queue, ar, decoder, total).");
        Meter.CreateObservableCounter("ar_tokens_total", () => Interlocked.Read(ref _tokens), description: "Visual tokens generated.");
        Meter.CreateObservableGauge("ar_host_bytes_per_step", () => new[]
        {
            new Measurement<double>(ArHostBytesPerStep(kvCache: true) ?? 0, new KeyValuePair<string, object?>("kind", "kv_cache")),
            new Measurement<double>(ArHostBytesPerStep(kvCache: false) ?? 0, new KeyValuePair<string, object?>("kind", "other")),
        }, unit: "By", description: "Mean bytes copied between host and device memory per AR decode step: the KV cache (stays on the device) and the rest (ids, positions, mask, logits).");
        Meter.CreateObservableGauge("ar_tokens_per_second", () => { lock (_gate) return _arBusy > 0 ? Interlocked.Read(ref _tokens) / _arBusy : 0; },
            description: "Visual tokens per second of AR compute.");
    }

    private static Measurement<long> Outcome(long value, string outcome) => new(value, new KeyValuePair<string, object?>("outcome", outcome));

    /// <summary>The instruments (see the class summary). Disposed with this object.</summary>
    public Meter Meter { get; }

    public int QueueDepth => Volatile.Read(ref QueueDepthNow);
    public long Completed => Interlocked.Read(ref _completed);
    public long Rejected => Interlocked.Read(ref _rejected);
    public long Cancelled => Interlocked.Read(ref _cancelled);
    public long Failed => Interlocked.Read(ref _failed);
    /// <summary>Mean requests per AR step and images per decoder step so far (0 before the first).</summary>
    public double MeanArBatch => Interlocked.Read(ref _arSteps) is var n and > 0 ? (double)Interlocked.Read(ref _arRows) / n : 0;
    public double MeanDecoderBatch => Interlocked.Read(ref _decoderSteps) is var n and > 0 ? (double)Interlocked.Read(ref _decoderImages) / n : 0;
    /// <summary>Largest AR and decoder batches seen so far.</summary>
    public int LargestArBatch => Volatile.Read(ref _largestAr);
    public int LargestDecoderBatch => Volatile.Read(ref _largestDecoder);

    internal void ArStep(int rows, double seconds, ArBatch.StepHostBytes? hostBytes = null)
    {
        Interlocked.Increment(ref _arSteps); Interlocked.Add(ref _arRows, rows); Interlocked.Add(ref _tokens, rows);
        lock (_gate)
        {
            _largestAr = Math.Max(_largestAr, rows); _arBusy += seconds;
            if (hostBytes is { } b) { _arHostBytesKv += b.KvCache; _arHostBytesOther += b.Other; _arCountedSteps++; }
        }
        _arBatch.Record(rows);
    }

    /// <summary>
    /// Mean bytes copied between host and device memory per AR step (one batched decode run, with the prefills and
    /// joins before it): of the KV cache (0: it stays on the device), or of everything else (token ids, positions,
    /// mask, logits, row indices). Null before the first step.
    /// </summary>
    public double? ArHostBytesPerStep(bool kvCache)
    {
        lock (_gate) return _arCountedSteps == 0 ? null : (double)(kvCache ? _arHostBytesKv : _arHostBytesOther) / _arCountedSteps;
    }

    internal void DecoderStep(int images)
    {
        Interlocked.Increment(ref _decoderSteps); Interlocked.Add(ref _decoderImages, images);
        lock (_gate) _largestDecoder = Math.Max(_largestDecoder, images);
        _decoderBatch.Record(images);
    }

    internal void Observe(string stage, TimeSpan t)
    {
        lock (_gate) { var (s, c) = _latency.GetValueOrDefault(stage); _latency[stage] = (s + t.TotalSeconds, c + 1); }
        _stageLatency.Record(t.TotalSeconds, new KeyValuePair<string, object?>("stage", stage));
    }

    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, long> _requests = new(StringComparer.Ordinal);

    /// <summary>
    /// Counts one API request (a call that may ask for several images) by its outcome: completed, failed,
    /// cancelled, rejected (429), invalid (4xx) or timeout. The image counters above count images.
    /// </summary>
    public void RecordRequest(string outcome) => _requests.AddOrUpdate(outcome, 1, (_, n) => n + 1);

    /// <summary>API requests recorded with <see cref="RecordRequest"/> for an outcome.</summary>
    public long Requests(string outcome) => _requests.GetValueOrDefault(outcome);

    internal void Done() => Interlocked.Increment(ref _completed);
    internal void Fail() => Interlocked.Increment(ref _failed);
    internal void Cancel() => Interlocked.Increment(ref _cancelled);
    internal void Reject() => Interlocked.Increment(ref _rejected);

    /// <summary>Mean latency of a stage in seconds (queue, ar, decoder, total), or null before the first request.</summary>
    public double? MeanLatency(string stage) { lock (_gate) return _latency.TryGetValue(stage, out var v) && v.Count > 0 ? v.Sum / v.Count : null; }

    public void Dispose() => Meter.Dispose();
}

/// <summary>
/// Serves many generation requests on one <see cref="ImageGenerator"/> with continuous batching: an AR loop advances
/// every active request by one token per model run (requests join and leave between steps), and a decoder loop
/// advances every denoising image by one step per model run. The two loops run on their own threads, so one
/// request's decoder overlaps the next ones' AR. Each request keeps its own seed: batching does not change which
/// tokens it gets (see docs/serving.md for the pixel tolerance).
/// </summary>
public sealed class BatchingGenerator : IDisposable, IImageQueue
{
    private sealed class Work(GenerationRequest request, IProgress<GenerationProgress>? progress, CancellationToken cancel)
    {
        public GenerationRequest Request { get; } = request;
        public IProgress<GenerationProgress>? Progress { get; } = progress;
        public CancellationToken Cancel { get; } = cancel;
        public TaskCompletionSource<GenerationResult> Result { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public Stopwatch Clock { get; } = Stopwatch.StartNew();
        public TimeSpan Queued, ArStarted, ArFinished, DecoderStarted;
        public ImageGenerator.PreparedRequest? Prepared;
        public ArBatch.ArSequence? Sequence;
        public DecoderStage.Job? Job;
    }

    private readonly ImageGenerator _generator;
    private readonly ArBatch _ar;
    private readonly ConcurrentQueue<Work> _queue = new();
    private readonly ConcurrentQueue<Work> _toDecoder = new();
    private readonly SemaphoreSlim _arSignal = new(0), _decoderSignal = new(0);
    private readonly CancellationTokenSource _stop = new();
    private readonly Thread _arThread, _decoderThread;

    public BatchingGenerator(ImageGenerator generator, BatchingOptions? options = null)
    {
        Options = options ?? new BatchingOptions();
        Options.Validate();
        _generator = generator;
        _ar = generator.CreateArBatch();
        _arThread = new Thread(ArLoop) { IsBackground = true, Name = "tessera-ar" };
        _decoderThread = new Thread(DecoderLoop) { IsBackground = true, Name = "tessera-decoder" };
        _arThread.Start();
        _decoderThread.Start();
    }

    public BatchingOptions Options { get; }
    public BatchingMetrics Metrics { get; } = new();
    /// <summary>Test hook: while reset, the AR stage waits before taking queued requests into its next step, so a test can queue several and start them as one batch.</summary>
    internal ManualResetEventSlim ArStart { get; } = new(initialState: true);
    public ImageGenerator Generator => _generator;
    ModelPackage IImageQueue.Package => _generator.Package;
    string IImageQueue.ArPlacement => _generator.ArDevice.ToString();
    string IImageQueue.DecoderPlacement => _generator.DecoderDevice.ToString();

    /// <summary>
    /// Queues a request. Throws <see cref="QueueFullException"/> at once when the queue is full; cancelling
    /// <paramref name="cancel"/> removes the request at the next step of whichever stage it is in.
    /// </summary>
    public Task<GenerationResult> GenerateAsync(GenerationRequest request, IProgress<GenerationProgress>? progress = null, CancellationToken cancel = default)
    {
        ObjectDisposedException.ThrowIf(_stop.IsCancellationRequested, this);
        // Before queuing: a bad request never takes a slot.
        GenerationLimits.Validate(request, _generator.Package);
        GenerationLimits.ValidatePrompt(request.Prompt, _generator.Package);
        if (Interlocked.Increment(ref Metrics.QueueDepthNow) > Options.QueueCapacity)
        {
            Interlocked.Decrement(ref Metrics.QueueDepthNow);
            Metrics.Reject();
            throw new QueueFullException(Options.QueueCapacity, RetryAfter());
        }
        var work = new Work(request, progress, cancel);
        _queue.Enqueue(work);
        _arSignal.Release();
        return work.Result.Task;
    }

    /// <summary>A guess at when a slot frees: the mean time a request spends in the system, at least 1 s.</summary>
    public TimeSpan RetryAfter() => TimeSpan.FromSeconds(Math.Max(1, Math.Ceiling(Metrics.MeanLatency("total") ?? 1)));

    private void ArLoop()
    {
        var active = new List<Work>();
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                if (active.Count == 0)
                {
                    _arSignal.Wait(_stop.Token);
                    // Let simultaneous requests join the first step, but only when others are about: a request that
                    // finds the whole server idle (concurrency 1) starts at once.
                    if (Options.Window > TimeSpan.Zero && OthersInFlight()) Thread.Sleep(Options.Window);
                }
                ArStart.Wait(_stop.Token);
                while (active.Count < Options.MaxArBatch && _queue.TryDequeue(out var w))
                {
                    Interlocked.Decrement(ref Metrics.QueueDepthNow);
                    if (w.Cancel.IsCancellationRequested) { Cancelled(w); continue; }
                    w.Queued = w.Clock.Elapsed;
                    try
                    {
                        w.Prepared = _generator.Prepare(w.Request);
                        w.Sequence = _ar.Start(w.Prepared.Prompt, w.Prepared.Sampler, w.Prepared.ForcedPreview);
                        w.ArStarted = w.Clock.Elapsed;
                        active.Add(w);
                    }
                    catch (Exception e) { Failed(w, e); }
                }
                Interlocked.Exchange(ref Metrics.ArActive, active.Count);
                DropCancelled(active);
                if (active.Count == 0)
                {
                    _ar.Clear(); // the cancelled requests' cache rows
                    continue;
                }

                var watch = Stopwatch.StartNew();
                ArBatch.StepHostBytes hostBytes;
                try
                {
                    hostBytes = _ar.Step(active.Select(w => w.Sequence!).ToList());
                }
                catch (Exception e)
                {
                    FailAll(active, e);
                    continue;
                }
                Metrics.ArStep(active.Count, watch.Elapsed.TotalSeconds, hostBytes);
                int finished = 0;
                foreach (var w in active.ToList())
                {
                    var s = w.Sequence!;
                    w.Progress?.Report(new GenerationProgress("ar", s.Done, s.Visual.Length));
                    if (!s.Finished) continue;
                    active.Remove(w);
                    Interlocked.Exchange(ref Metrics.ArActive, active.Count);
                    w.ArFinished = w.Clock.Elapsed;
                    Metrics.Observe("queue", w.Queued);
                    Metrics.Observe("ar", w.ArFinished - w.ArStarted);
                    _toDecoder.Enqueue(w);
                    finished++;
                }
                // One signal after the step's whole hand-off: requests that finish the same AR step reach an idle
                // decoder together and share its first step.
                if (finished > 0) _decoderSignal.Release(finished);
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested) { }
        finally
        {
            foreach (var w in active) w.Result.TrySetCanceled();
            _ar.Dispose();
        }
    }

    /// <summary>Whether any request besides the one that woke the AR loop is queued or in the decoder.</summary>
    private bool OthersInFlight() =>
        Volatile.Read(ref Metrics.QueueDepthNow) > 1 || Volatile.Read(ref Metrics.DecoderActive) > 0 || !_toDecoder.IsEmpty;

    private void DecoderLoop()
    {
        var active = new List<Work>();
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                if (active.Count == 0) _decoderSignal.Wait(_stop.Token);
                while (active.Count < Options.MaxDecoderBatch && _toDecoder.TryDequeue(out var w))
                {
                    if (w.Cancel.IsCancellationRequested) { Cancelled(w); continue; }
                    try
                    {
                        var (steps, cfg, shift) = _generator.DecoderSettings(w.Request);
                        w.Job = _generator.Decoder.Start(w.Sequence!.Visual[_ar.Layout.PreviewTokens..], _generator.Package.Manifest.Ar.TargetGrid,
                            w.Prepared!.Prompt.Glyphs, w.Request.Seed, steps, cfg, shift, _generator.DecoderSampler(w.Request));
                        w.DecoderStarted = w.Clock.Elapsed;
                        active.Add(w);
                    }
                    catch (Exception e) { Failed(w, e); }
                }
                Interlocked.Exchange(ref Metrics.DecoderActive, active.Count);
                DropCancelled(active);
                if (active.Count == 0) continue;
                try
                {
                    _generator.Decoder.Step(active.Select(w => w.Job!).ToList());
                }
                catch (Exception e)
                {
                    FailAll(active, e);
                    continue;
                }
                Metrics.DecoderStep(active.Count);
                foreach (var w in active.ToList())
                {
                    var job = w.Job!;
                    w.Progress?.Report(new GenerationProgress("decoder", job.Done, job.Steps));
                    if (!job.Finished) continue;
                    active.Remove(w);
                    Interlocked.Exchange(ref Metrics.DecoderActive, active.Count);
                    Complete(w);
                }
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested) { }
        finally
        {
            foreach (var w in active) w.Result.TrySetCanceled();
        }
    }

    private void Complete(Work w)
    {
        try
        {
            var decoderTime = w.Clock.Elapsed - w.DecoderStarted;
            var s = w.Sequence!;
            var preview = s.Visual[.._ar.Layout.PreviewTokens];
            var target = s.Visual[_ar.Layout.PreviewTokens..];
            var timings = new StageTimings(w.Prepared!.Encode, TimeSpan.Zero, w.ArFinished - w.ArStarted, s.Visual.Length, decoderTime, w.Job!.Steps);
            var result = _generator.Finish(w.Job.X, preview, target, timings, w.Prepared.Warnings);
            Metrics.Observe("decoder", decoderTime);
            Metrics.Observe("total", w.Clock.Elapsed);
            Metrics.Done();
            w.Result.TrySetResult(result);
        }
        catch (Exception e) { Failed(w, e); }
    }

    /// <summary>Requests whose callers cancelled leave the stage between steps.</summary>
    private void DropCancelled(List<Work> active)
    {
        foreach (var w in active.Where(w => w.Cancel.IsCancellationRequested).ToList())
        {
            active.Remove(w);
            Cancelled(w);
        }
    }

    /// <summary>A failed model run fails every request that was in it.</summary>
    private void FailAll(List<Work> active, Exception e)
    {
        foreach (var w in active) Failed(w, e);
        active.Clear();
    }

    private void Failed(Work w, Exception e)
    {
        Metrics.Fail();
        w.Result.TrySetException(e);
    }

    private void Cancelled(Work w)
    {
        Metrics.Cancel();
        w.Result.TrySetCanceled(w.Cancel);
    }

    public void Dispose()
    {
        if (_stop.IsCancellationRequested) return;
        _stop.Cancel();
        _arThread.Join();
        _decoderThread.Join();
        while (_queue.TryDequeue(out var w)) w.Result.TrySetCanceled();
        while (_toDecoder.TryDequeue(out var w)) w.Result.TrySetCanceled();
        _stop.Dispose();
        Metrics.Dispose();
    }
}
