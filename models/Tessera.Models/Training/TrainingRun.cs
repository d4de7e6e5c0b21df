using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Tessera.Data;
using Tessera.Datasets;
using TorchSharp;
using static TorchSharp.torch;

namespace Tessera.Models.Training;

/// <summary>How a training run is driven, as opposed to what it trains (same for every stage).</summary>
/// <param name="Resume">Continue from the newest valid checkpoint in the output folder.</param>
/// <param name="Log">Where progress and warnings go (default: stderr).</param>
/// <param name="BackgroundBatches">Make batches on a background thread (false: inline, for benchmarks).</param>
/// <param name="FusedEma">Update the weight EMA inside the optimizer step (false: a separate pass, for benchmarks).</param>
/// <param name="StopAfterStep">Stop after this step even if the config has more (the schedule still uses the config's steps).</param>
/// <param name="WriteCheckpoints">False for benchmarks.</param>
/// <param name="Force">Start over in a folder that holds a run (deleting it); without it that is refused (see <see cref="RunFolder"/>).</param>
/// <param name="Progress">Receives each step's progress (the CLI draws a bar); without it a plain line goes to <paramref name="Log"/> every 30 s.</param>
public sealed record StageRunOptions(
    bool Resume = false,
    TextWriter? Log = null,
    CancellationToken Cancellation = default,
    bool BackgroundBatches = true,
    bool FusedEma = true,
    long? StopAfterStep = null,
    bool WriteCheckpoints = true,
    bool Force = false,
    IProgress<TrainingProgress>? Progress = null);

/// <summary>One training step's progress: where the run is, the smoothed loss and the rate.</summary>
public sealed record TrainingProgress(string Stage, long Step, long FirstStep, long LastStep, double SmoothedLoss, double StepsPerSecond,
    IReadOnlyDictionary<string, double> Metrics)
{
    /// <summary>"loss 0.1234 recon 0.05 … 3.10 steps/s ETA 00:01:02".</summary>
    public string Describe()
    {
        var eta = TimeSpan.FromSeconds((LastStep - Step) / Math.Max(1e-9, StepsPerSecond));
        var extra = string.Join(" ", Metrics.Take(3).Select(m => string.Create(CultureInfo.InvariantCulture, $"{m.Key} {m.Value:G4}")));
        return string.Create(CultureInfo.InvariantCulture, $"loss {SmoothedLoss:F4} {extra} {StepsPerSecond:F2} steps/s ETA {eta:hh\\:mm\\:ss}");
    }
}

/// <summary>What one call to <see cref="TrainingRun{TBatch}.Run"/> did.</summary>
public sealed record TrainingResult(long FirstStep, long LastStep, double LastLoss, double StepsPerSecond, string? CheckpointPath, bool Interrupted);

/// <summary>
/// The training loop shared by all stages: AdamW with a fused weight EMA, warm-up + cosine learning rate, batches
/// from a (background) <see cref="BatchSource{T}"/>, atomic checkpoints every N steps, exact resume, a loss CSV and
/// PNG plot, and a progress line with loss, steps/s and ETA.
/// </summary>
/// <remarks>
/// Exact resume: the batch of a step is a function of the step; all torch randomness in a step comes from a
/// generator seeded with (seed, step); optimizer moments, EMA and module buffers are checkpointed. So a run resumed
/// from step k computes the same step k+1 as an uninterrupted run.
/// </remarks>
public sealed class TrainingRun<TBatch> where TBatch : IDisposable
{
    public required string Stage { get; init; }
    public required string OutputDirectory { get; init; }
    public required TrainConfig Config { get; init; }
    /// <summary>The stage's own configuration, stored in checkpoints; a resume with a different one is refused.</summary>
    public required string ModelConfigJson { get; init; }
    public required nn.Module Model { get; init; }
    public required Func<long, TBatch> MakeBatch { get; init; }
    /// <summary>Loss of one batch, plus named metrics to log.</summary>
    public required Func<TBatch, long, (Tensor Loss, IReadOnlyDictionary<string, double> Metrics)> Loss { get; init; }
    /// <summary>Optional work after the optimizer step (e.g. dead-code restarts).</summary>
    public Action<TBatch, long>? AfterStep { get; init; }
    public StageRunOptions Options { get; init; } = new();

    private bool Resume => Options.Resume;
    private bool BackgroundBatches => Options.BackgroundBatches;
    private bool FusedEma => Options.FusedEma;
    private long? StopAfterStep => Options.StopAfterStep;
    private bool WriteCheckpoints => Options.WriteCheckpoints;
    private TextWriter Log => Options.Log ?? Console.Error;
    private CancellationToken Cancellation => Options.Cancellation;

    /// <summary>Losses of the steps run by the last <see cref="Run"/>, by step.</summary>
    public SortedDictionary<long, double> Losses { get; } = [];

    public AdamWEma? Optimizer { get; private set; }

    public TrainingResult Run()
    {
        if (Config.Threads > 0) set_num_threads(Config.Threads);
        Directory.CreateDirectory(OutputDirectory);
        if (WriteCheckpoints) RunFolder.Prepare(OutputDirectory, Resume, Options.Force, Log);
        var store = new CheckpointStore(Path.Combine(OutputDirectory, "checkpoints"), Config.KeepCheckpoints);
        var named = Model.named_parameters().Select(p => (p.name, p.parameter)).ToList();
        Optimizer = new AdamWEma(named, weightDecay: Config.WeightDecay, emaDecay: Config.EmaDecay, fusedEma: FusedEma);

        long start = 0;
        if (Resume && store.LoadLatest(m => Log.WriteLine($"warning: {m}"), moveAsideUnusable: true) is { } latest)
        {
            var savedConfig = latest.Metadata["modelConfig"]?.GetValue<string>();
            if (savedConfig != ModelConfigJson)
                throw new TrainingCheckpointException($"Checkpoint {latest.Path} was trained with a different {Stage} config; resume with the same config, or train into a new --out folder.");
            using (no_grad())
            {
                foreach (var (name, p) in Model.named_parameters()) AdamWEma.Copy(latest.Tensors, $"model.{name}", p);
                foreach (var (name, b) in Model.named_buffers()) AdamWEma.Copy(latest.Tensors, $"buffer.{name}", b);
            }
            Optimizer.Load(latest.Tensors);
            start = latest.Metadata["step"]!.GetValue<long>();
            foreach (var t in latest.Tensors.Values) t.Dispose();
            Log.WriteLine($"resuming {Stage} from {latest.Path} (step {start})");
        }
        else if (Resume)
        {
            Log.WriteLine($"no checkpoint in {store.Directory}; starting {Stage} from step 0");
        }

        long last = Math.Min(Config.Steps, StopAfterStep ?? long.MaxValue);
        var csv = new LossLog(Path.Combine(OutputDirectory, "loss.csv"), start);
        using var batches = new BatchSource<TBatch>(MakeBatch, start + 1, last, BackgroundBatches);
        var progress = new ProgressLine(Options.Progress, Log, Stage, start, last);
        var watch = Stopwatch.StartNew();
        double lastLoss = double.NaN;
        string? lastCheckpoint = null;
        bool interrupted = false;
        long step = start;
        Model.train();
        while (step < last)
        {
            if (Cancellation.IsCancellationRequested) { interrupted = true; break; }
            step++;
            using var scope = NewDisposeScope();
            using var batch = batches.Get(step);
            manual_seed((long)(SplitMix64.Mix(Config.Seed, (ulong)step) & long.MaxValue));
            double lr = LearningRate(step);
            Optimizer.ZeroGrad();
            var (loss, metrics) = Loss(batch, step);
            loss.backward();
            if (Config.GradClip > 0) nn.utils.clip_grad_norm_(Model.parameters(), Config.GradClip);
            Optimizer.Step(lr);
            AfterStep?.Invoke(batch, step);
            lastLoss = loss.item<float>();
            if (!double.IsFinite(lastLoss))
                throw new InvalidOperationException($"{Stage} loss became {lastLoss} at step {step}; lower the learning rate in the config and resume from the last checkpoint.");
            Losses[step] = lastLoss;
            csv.Append(step, lastLoss, lr, watch.Elapsed.TotalSeconds, metrics);
            progress.Update(step, lastLoss, metrics);
            if (WriteCheckpoints && (step % Config.CheckpointEvery == 0 || step == last))
                lastCheckpoint = SaveCheckpoint(store, step, csv);
        }
        if (interrupted && WriteCheckpoints && step > start)
        {
            lastCheckpoint = SaveCheckpoint(store, step, csv);
            Log.WriteLine($"\ninterrupted: checkpoint at step {step} written; continue with --resume");
        }
        progress.Finish();
        double rate = (step - start) / Math.Max(1e-9, watch.Elapsed.TotalSeconds);
        return new TrainingResult(start + 1, step, lastLoss, rate, lastCheckpoint, interrupted);
    }

    private string SaveCheckpoint(CheckpointStore store, long step, LossLog csv)
    {
        var tensors = Model.named_parameters().Select(p => ($"model.{p.name}", (Tensor)p.parameter))
            .Concat(Model.named_buffers().Select(b => ($"buffer.{b.name}", b.buffer)))
            .Concat(Optimizer!.State())
            .ToList();
        var meta = new JsonObject
        {
            ["stage"] = Stage,
            ["step"] = step,
            ["modelConfig"] = ModelConfigJson,
            ["savedAt"] = DateTime.UtcNow.ToString("O"),
        };
        store.Save(step, tensors, meta);
        csv.Flush();
        try { LossPlot.Write(csv.Path, Path.ChangeExtension(csv.Path, ".png"), $"{Stage} training loss"); }
        catch (Exception e) when (e is IOException or InvalidDataException) { Log.WriteLine($"warning: loss plot not written: {e.Message}"); }
        return store.PathFor(step);
    }

    /// <summary>Linear warm-up to the configured rate, then cosine decay to 10% of it at the last step.</summary>
    public double LearningRate(long step)
    {
        double peak = Config.LearningRate;
        if (step <= Config.WarmupSteps) return peak * step / Math.Max(1, Config.WarmupSteps);
        double progress = (double)(step - Config.WarmupSteps) / Math.Max(1, Config.Steps - Config.WarmupSteps);
        return peak * (0.1 + 0.9 * 0.5 * (1 + Math.Cos(Math.PI * Math.Min(1, progress))));
    }
}

/// <summary>loss.csv: step, loss, lr, seconds, then the stage's metrics. On resume, rows after the resumed step are dropped.</summary>
internal sealed class LossLog
{
    private readonly List<string> _pending = [];
    private string[]? _metricNames;

    public LossLog(string path, long resumedStep)
    {
        Path = path;
        if (File.Exists(path))
        {
            var kept = File.ReadLines(path).Where((l, i) => i == 0 || (long.TryParse(l.Split(',')[0], out var s) && s <= resumedStep)).ToList();
            if (resumedStep == 0) kept.Clear();
            File.WriteAllLines(path, kept);
            if (kept.Count > 0) _metricNames = kept[0].Split(',').Skip(4).ToArray();
        }
    }

    public string Path { get; }

    public void Append(long step, double loss, double lr, double seconds, IReadOnlyDictionary<string, double> metrics)
    {
        if (_metricNames is null)
        {
            _metricNames = metrics.Keys.Order(StringComparer.Ordinal).ToArray();
            _pending.Add(string.Join(",", new[] { "step", "loss", "lr", "seconds" }.Concat(_metricNames)));
        }
        var c = CultureInfo.InvariantCulture;
        _pending.Add(string.Join(",", new[] { step.ToString(c), loss.ToString("G6", c), lr.ToString("G4", c), seconds.ToString("F1", c) }
            .Concat(_metricNames.Select(n => metrics.TryGetValue(n, out var v) ? v.ToString("G6", c) : ""))));
        if (_pending.Count >= 50) Flush();
    }

    public void Flush()
    {
        if (_pending.Count == 0) return;
        File.AppendAllLines(Path, _pending);
        _pending.Clear();
    }
}

/// <summary>
/// Smooths the loss and reports progress: to <see cref="StageRunOptions.Progress"/> every step when given, otherwise as
/// a plain line on the log every 30 s (and at the first and last step).
/// </summary>
internal sealed class ProgressLine(IProgress<TrainingProgress>? sink, TextWriter log, string stage, long start, long last)
{
    private readonly Stopwatch _watch = Stopwatch.StartNew();
    private double _smoothed = double.NaN;
    private TimeSpan _lastPrint = TimeSpan.Zero;

    public void Update(long step, double loss, IReadOnlyDictionary<string, double> metrics)
    {
        _smoothed = double.IsNaN(_smoothed) ? loss : 0.95 * _smoothed + 0.05 * loss;
        var elapsed = _watch.Elapsed;
        double rate = (step - start) / Math.Max(1e-9, elapsed.TotalSeconds);
        var report = new TrainingProgress(stage, step, start, last, _smoothed, rate, metrics);
        if (sink is not null)
        {
            sink.Report(report);
            return;
        }
        if ((elapsed - _lastPrint).TotalSeconds < 30 && step != last && step != start + 1) return;
        _lastPrint = elapsed;
        log.WriteLine($"{stage} {step}/{last} {report.Describe()}");
    }

    public void Finish() { }
}
