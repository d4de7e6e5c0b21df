using System.Collections.Concurrent;
using System.Diagnostics;
using Orleans;
using Tessera.Pipeline;
using Tessera.Pipeline.Batching;

namespace Tessera.Cluster;

/// <summary>
/// <c>tessera serve --cluster</c>'s generator: each request runs its AR stage on an AR node's worker, then its decoder
/// stage on a decoder node's worker, picking the least busy node that serves the stage with the same model. Only
/// the prompt and settings go out; token ids and glyph text come back from the AR node and go to the decoder node;
/// a PNG comes back. A node that stops answering is dropped at once and its requests re-run elsewhere with the
/// same seed (so the same bytes); each request is answered once, whatever a dead node might still send.
/// </summary>
public sealed class ClusterGenerator : IImageQueue, IAsyncDisposable
{
    /// <param name="LastAnswerUtc">When the node last answered an info call.</param>
    /// <param name="Suspect">A call to it failed in Orleans (connection refused, silo unavailable) and it has not
    /// answered since: new work goes to other nodes while there are any, but it is not dropped for that alone.</param>
    private sealed record Node(NodeInfo Info, CancellationTokenSource Dead, DateTime LastAnswerUtc, bool Suspect = false);

    /// <summary>
    /// How long a node membership still lists may go without answering before it is taken for dead. Time, not a count
    /// of refreshes: refreshes also run when a call fails, and a burst of them must not drop a busy but healthy node.
    /// </summary>
    public static readonly TimeSpan SilentLimit = TimeSpan.FromSeconds(10);

    private readonly ClusterClient _client;
    private readonly string _modelHash;
    private readonly TextWriter _log;
    private readonly ConcurrentDictionary<string, Node> _nodes = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int> _inFlight = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _refreshGate = new();
    private Task? _refreshing;
    private readonly Task _watch;
    private int _inSystem;
    private long _reruns;

    private ClusterGenerator(ClusterClient client, ModelPackage package, BatchingOptions options, TextWriter log)
    {
        _client = client; Package = package; Options = options; _log = log;
        _modelHash = TesseraNode.ModelHash(package);
        _watch = Task.Run(WatchAsync);
    }

    public ModelPackage Package { get; }
    public BatchingOptions Options { get; }
    public BatchingMetrics Metrics { get; } = new();
    public string ArPlacement => Placement(Stages.Ar);
    public string DecoderPlacement => Placement(Stages.Decoder);
    /// <summary>Stage runs repeated on another node because the first one died or refused.</summary>
    public long Reruns => Interlocked.Read(ref _reruns);
    /// <summary>How often the node list is refreshed, and how long a node may take to answer before it is dropped.</summary>
    public static readonly TimeSpan WatchPeriod = TimeSpan.FromMilliseconds(500), NodeAnswerTimeout = TimeSpan.FromSeconds(2);

    public IReadOnlyList<NodeInfo> Nodes => _nodes.Values.Select(n => n.Info).OrderBy(n => n.Name, StringComparer.Ordinal).ToList();

    private string Placement(string stage)
    {
        var n = Serving(stage).Count;
        return $"cluster ({n} {stage} node{(n == 1 ? "" : "s")})";
    }

    public static async Task<ClusterGenerator> StartAsync(ClusterClient client, ModelPackage package, BatchingOptions options, TextWriter? log = null)
    {
        options.Validate();
        var g = new ClusterGenerator(client, package, options, log ?? TextWriter.Null);
        await g.RefreshAsync();
        return g;
    }

    private async Task WatchAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            try { await Task.Delay(WatchPeriod, _stop.Token); await RefreshAsync(); }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested) { return; }
            catch (Exception e) { _log.WriteLine($"cluster: refreshing the node list failed: {e.Message}"); }
        }
    }

    /// <summary>
    /// Asks the members (and every node known so far) for their info; a node is dropped when membership no longer
    /// lists it or it has been silent for <see cref="SilentLimit"/>. Callers at the same time share one refresh.
    /// </summary>
    public Task RefreshAsync()
    {
        lock (_refreshGate)
        {
            if (_refreshing is { IsCompleted: false } running) return running;
            return _refreshing = RefreshOnceAsync();
        }
    }

    private async Task RefreshOnceAsync()
    {
        IEnumerable<string> silos;
        HashSet<string>? members = null;
        try { silos = await _client.ActiveSilosAsync().WaitAsync(NodeAnswerTimeout); members = new HashSet<string>(silos, StringComparer.Ordinal); }
        catch (Exception) { silos = []; } // the management grain may be on a dead node until membership moves it
        var all = silos.Concat(_nodes.Keys).Distinct(StringComparer.Ordinal).ToList();
        var infos = await _client.NodesAsync(NodeAnswerTimeout, all);
        var alive = infos.ToDictionary(i => i.Silo, StringComparer.Ordinal);
        var now = DateTime.UtcNow;
        foreach (var (silo, node) in _nodes)
        {
            if (alive.ContainsKey(silo)) continue;
            // Not answering: dead when membership no longer lists it, or when silent too long (a SIGKILLed node stays
            // a member until the membership timeout; a busy one on a loaded machine answers late now and then).
            bool gone = members is not null && members.Count > 0 && !members.Contains(silo);
            if (!gone && now - node.LastAnswerUtc < SilentLimit) continue;
            if (_nodes.TryRemove(silo, out _))
            {
                _log.WriteLine($"cluster: node {node.Info.Name} ({silo}) stopped answering; its requests re-run elsewhere");
                node.Dead.Cancel();
            }
        }
        foreach (var info in infos)
        {
            if (_nodes.TryGetValue(info.Silo, out var known)) _nodes[info.Silo] = known with { Info = info, LastAnswerUtc = now, Suspect = false };
            else if (_nodes.TryAdd(info.Silo, new Node(info, new CancellationTokenSource(), now)))
                _log.WriteLine($"cluster: node {info.Name} ({info.Silo}) joined, stages {string.Join(",", info.Stages)}");
        }
    }

    private List<Node> Serving(string stage) =>
        _nodes.Values.Where(n => n.Info.Serves(stage) && n.Info.Metadata.GetValueOrDefault(NodeMetadata.ModelHash) == _modelHash).ToList();

    private StageUnavailableException Unavailable(string stage)
    {
        var other = _nodes.Values.Where(n => n.Info.Serves(stage)).ToList();
        var why = other.Count > 0
            ? $"the {other.Count} node(s) serving it have another model ({string.Join(", ", other.Select(n => $"{n.Info.Name}: {n.Info.Metadata.GetValueOrDefault(NodeMetadata.Model)} {n.Info.Metadata.GetValueOrDefault(NodeMetadata.ModelHash)}").Distinct())}; this front has {Package.Manifest.Name} {_modelHash})"
            : "no live node serves it";
        return new StageUnavailableException(stage, $"The {stage} stage is unavailable in the cluster: {why}. Start one with 'tessera node --cluster {_client.Connection.Text} --stages {stage}'.");
    }

    public async Task<GenerationResult> GenerateAsync(GenerationRequest request, IProgress<GenerationProgress>? progress = null, CancellationToken cancel = default)
    {
        ObjectDisposedException.ThrowIf(_stop.IsCancellationRequested, this);
        GenerationLimits.Validate(request, Package);
        GenerationLimits.ValidatePrompt(request.Prompt, Package);
        foreach (var stage in Stages.All) if (Serving(stage).Count == 0) throw Unavailable(stage);
        if (Interlocked.Increment(ref _inSystem) > Options.QueueCapacity)
        {
            Interlocked.Decrement(ref _inSystem);
            Metrics.Reject();
            throw new QueueFullException(Options.QueueCapacity, TimeSpan.FromSeconds(Math.Max(1, Math.Ceiling(Metrics.MeanLatency("total") ?? 1))));
        }
        var clock = Stopwatch.StartNew();
        Interlocked.Increment(ref Metrics.QueueDepthNow);
        bool queued = true;
        try
        {
            var ar = await RunAsync(Stages.Ar,
                (key, ct) => _client.Client.GetGrain<IArWorkerGrain>(key).Run(new ArWork(request.Prompt, request.Seed, request.Temperature, request.TopK, request.TopP, request.SourceRgb), ct),
                a => (a.Status, a.Error), () => { Interlocked.Decrement(ref Metrics.QueueDepthNow); queued = false; Interlocked.Increment(ref Metrics.ArActive); }, cancel);
            Interlocked.Decrement(ref Metrics.ArActive);
            Metrics.ArStep(ar.PreviewTokens.Length + ar.TargetTokens.Length, ar.ArMs / 1000);
            Metrics.Observe("ar", TimeSpan.FromMilliseconds(ar.ArMs));
            progress?.Report(new GenerationProgress("ar", ar.PreviewTokens.Length + ar.TargetTokens.Length, ar.PreviewTokens.Length + ar.TargetTokens.Length));

            Interlocked.Increment(ref Metrics.DecoderActive);
            DecoderAnswer dec;
            try
            {
                dec = await RunAsync(Stages.Decoder,
                    (key, ct) => _client.Client.GetGrain<IDecoderWorkerGrain>(key).Run(new DecoderWork(ar.TargetTokens, ar.Glyphs, request.Seed, request.Steps, request.Cfg, request.Sampler), ct),
                    d => (d.Status, d.Error), null, cancel);
            }
            finally { Interlocked.Decrement(ref Metrics.DecoderActive); }
            Metrics.DecoderStep(1);
            Metrics.Observe("decoder", TimeSpan.FromMilliseconds(dec.DecoderMs));
            progress?.Report(new GenerationProgress("decoder", dec.Steps, dec.Steps));
            var size = Package.Manifest.Decoder.ImageSize;
            var (rgb, _, _) = Tessera.Data.ImageFiles.DecodeRgb(dec.Png, "the decoder node's PNG");
            var timings = new StageTimings(TimeSpan.FromMilliseconds(ar.EncodeMs), TimeSpan.Zero, TimeSpan.FromMilliseconds(ar.ArMs), ar.PreviewTokens.Length + ar.TargetTokens.Length,
                TimeSpan.FromMilliseconds(dec.DecoderMs), dec.Steps);
            Metrics.Observe("total", clock.Elapsed);
            Metrics.Done();
            return new GenerationResult(rgb, size, dec.Png, ar.PreviewTokens, ar.TargetTokens, timings, ar.Warnings);
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested) { Metrics.Cancel(); throw; }
        catch (QueueFullException) { Metrics.Reject(); throw; }
        catch (Exception) { Metrics.Fail(); throw; }
        finally
        {
            if (queued) Interlocked.Decrement(ref Metrics.QueueDepthNow);
            Interlocked.Decrement(ref _inSystem);
        }
    }

    /// <summary>
    /// Runs one stage on the least busy node serving it: re-runs on another node when the node dies (its watch token
    /// fires) or the call fails in Orleans, tries the next node when a queue is full, and gives up with 429 when
    /// every queue is full or 503 when no node is left.
    /// </summary>
    private async Task<T> RunAsync<T>(string stage, Func<string, CancellationToken, Task<T>> call, Func<T, (WorkStatus, string?)> status, Action? started, CancellationToken cancel)
    {
        var full = new HashSet<string>(StringComparer.Ordinal);
        for (int attempt = 0; ; attempt++)
        {
            cancel.ThrowIfCancellationRequested();
            var serving = Serving(stage);
            if (serving.Count == 0) throw Unavailable(stage);
            var candidates = serving.Where(n => !full.Contains(n.Info.Silo)).ToList();
            if (candidates.Count == 0)
                throw new QueueFullException(serving.Sum(n => n.Info.Workers.Where(w => w.Stage == stage).Sum(w => w.Capacity)), TimeSpan.FromSeconds(Math.Max(1, Math.Ceiling(Metrics.MeanLatency("total") ?? 1))));
            if (attempt > 20) throw new InvalidOperationException($"The {stage} stage could not be run after {attempt} tries on {string.Join(", ", serving.Select(n => n.Info.Name))}.");
            // A node whose last call failed gets work only when every other candidate is suspect too.
            if (candidates.Any(n => !n.Suspect)) candidates.RemoveAll(n => n.Suspect);
            var node = candidates.MinBy(n => Load(n, stage))!;
            var key = WorkerKeys.Worker(stage, node.Info.Silo, node.Info.DeviceFor(stage) ?? "cpu:0");
            _inFlight.AddOrUpdate(key, 1, (_, v) => v + 1);
            try
            {
                using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancel, node.Dead.Token);
                started?.Invoke(); started = null;
                var answer = await call(key, linked.Token).WaitAsync(linked.Token);
                var (s, error) = status(answer);
                switch (s)
                {
                    case WorkStatus.Ok: return answer;
                    case WorkStatus.QueueFull: full.Add(node.Info.Silo); continue;
                    case WorkStatus.Cancelled: Interlocked.Increment(ref _reruns); continue; // the node is stopping
                    default: throw new InvalidOperationException($"The {stage} stage failed on node {node.Info.Name}: {error}");
                }
            }
            catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
            {
                Interlocked.Increment(ref _reruns);
                _log.WriteLine($"cluster: {stage} on node {node.Info.Name} lost with the node; re-running the request elsewhere with the same seed");
            }
            catch (Exception e) when (e is Orleans.Runtime.OrleansException or TimeoutException or Orleans.Runtime.SiloUnavailableException && !cancel.IsCancellationRequested)
            {
                Interlocked.Increment(ref _reruns);
                _log.WriteLine($"cluster: {stage} on node {node.Info.Name} failed ({e.Message.ReplaceLineEndings(" ")}); trying again");
                MarkSuspect(node.Info.Silo);
                await RefreshAsync();
                await Task.Delay(100, cancel);
            }
            finally
            {
                _inFlight.AddOrUpdate(key, 0, (_, v) => v - 1);
            }
        }
    }

    private void MarkSuspect(string silo)
    {
        while (_nodes.TryGetValue(silo, out var n) && !n.Suspect && !_nodes.TryUpdate(silo, n with { Suspect = true }, n)) { }
    }

    /// <summary>Requests this front has at the worker, plus what the node last said it had from others.</summary>
    private double Load(Node node, string stage)
    {
        var key = WorkerKeys.Worker(stage, node.Info.Silo, node.Info.DeviceFor(stage) ?? "cpu:0");
        return _inFlight.GetValueOrDefault(key) + Random.Shared.NextDouble() * 0.1;
    }

    public async ValueTask DisposeAsync()
    {
        if (_stop.IsCancellationRequested) return;
        _stop.Cancel();
        try { await _watch; } catch (Exception) { }
        foreach (var n in _nodes.Values) n.Dead.Dispose();
        Metrics.Dispose();
    }
}
