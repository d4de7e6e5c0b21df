using Spectre.Console;
using Tessera.Pipeline;

namespace Tessera.Cli;

/// <summary>
/// Progress bars on stderr, one implementation for every long command (generate's stages, training): on a terminal a
/// live Spectre.Console display (bar, percentage, description, remaining time); when stderr is redirected (logs, CI,
/// tests) no redrawing at all — a plain line when a bar finishes, and for long work at most one line per
/// <see cref="PlainInterval"/>.
/// </summary>
public sealed class ConsoleProgress : IDisposable
{
    /// <summary>How often a redirected stderr gets a line for a bar that is still running.</summary>
    public TimeSpan PlainInterval { get; init; } = TimeSpan.FromSeconds(30);

    private readonly bool _interactive;
    private readonly TextWriter _output;
    private readonly TaskCompletionSource<ProgressContext>? _context;
    private readonly TaskCompletionSource? _finished;
    private readonly Task? _display;

    /// <param name="interactive">Draw live bars (default: when stderr is a terminal).</param>
    /// <param name="output">Where bars and lines go (default: stderr; <c>tessera bench instrumentation</c> draws into a discarding writer).</param>
    public ConsoleProgress(bool? interactive = null, TextWriter? output = null)
    {
        _output = output ?? Console.Error;
        _interactive = interactive ?? (output is null && !Console.IsErrorRedirected && AnsiConsole.Profile.Capabilities.Interactive);
        if (!_interactive) return;
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(_output),
            // Drawn live even into a writer that is not a terminal (the benchmark's), as on one.
            Interactive = InteractionSupport.Yes, Ansi = AnsiSupport.Yes,
        });
        _context = new TaskCompletionSource<ProgressContext>(TaskCreationOptions.RunContinuationsAsynchronously);
        _finished = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var finished = _finished.Task;
        _display = console.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .StartAsync(async ctx =>
            {
                _context.SetResult(ctx);
                await finished;
                ctx.Refresh();
            });
    }

    /// <summary>A new bar called <paramref name="name"/> that is complete at <paramref name="total"/>.</summary>
    public Bar Add(string name, double total) =>
        new(this, name, Math.Max(1, total), _interactive ? _context!.Task.GetAwaiter().GetResult().AddTask(Markup.Escape(name), maxValue: Math.Max(1, total)) : null);

    public void Dispose()
    {
        if (_finished is null) return;
        _finished.TrySetResult();
        _display!.GetAwaiter().GetResult();
    }

    /// <summary>One bar.</summary>
    public sealed class Bar
    {
        private readonly ConsoleProgress _owner;
        private readonly string _name;
        private readonly double _total;
        private readonly ProgressTask? _task;
        private DateTime _lastPlain = DateTime.UtcNow;
        private bool _done;

        internal Bar(ConsoleProgress owner, string name, double total, ProgressTask? task) => (_owner, _name, _total, _task) = (owner, name, total, task);

        /// <summary>Moves the bar to <paramref name="value"/>; <paramref name="detail"/> (e.g. "40/80 tokens") follows the name.</summary>
        public void Set(double value, string detail)
        {
            if (_done) return;
            if (_task is not null)
            {
                _task.Description = Markup.Escape($"{_name} {detail}");
                _task.Value = Math.Min(value, _total);
            }
            else if (DateTime.UtcNow - _lastPlain >= _owner.PlainInterval && value < _total)
            {
                _lastPlain = DateTime.UtcNow;
                _owner._output.WriteLine($"{_name} {detail}");
            }
            if (value >= _total) Finish(detail);
        }

        /// <summary>Completes the bar; on a redirected stderr this is its one line.</summary>
        public void Finish(string detail)
        {
            if (_done) return;
            _done = true;
            if (_task is not null)
            {
                _task.Description = Markup.Escape($"{_name} {detail}");
                _task.Value = _total;
                _task.StopTask();
            }
            else
            {
                _owner._output.WriteLine($"{_name} {detail}");
            }
        }
    }
}

/// <summary>"ar 40/80 tokens", "decoder 3/8 steps": one bar per stage of a generation, in the order the stages report.</summary>
public sealed class StageBars(ConsoleProgress display) : IProgress<GenerationProgress>
{
    private readonly Dictionary<string, ConsoleProgress.Bar> _bars = new(StringComparer.Ordinal);

    public void Report(GenerationProgress p)
    {
        ConsoleProgress.Bar bar;
        lock (_bars)
        {
            if (!_bars.TryGetValue(p.Stage, out bar!)) _bars[p.Stage] = bar = display.Add(p.Stage, p.Total);
        }
        bar.Set(p.Done, $"{p.Done}/{p.Total} {(p.Stage == "ar" ? "tokens" : "steps")}");
    }
}
