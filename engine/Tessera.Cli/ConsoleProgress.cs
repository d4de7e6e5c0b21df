using Spectre.Console;

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
    private readonly TaskCompletionSource<ProgressContext>? _context;
    private readonly TaskCompletionSource? _finished;
    private readonly Task? _display;

    /// <param name="interactive">Draw live bars (default: when stderr is a terminal).</param>
    public ConsoleProgress(bool? interactive = null)
    {
        _interactive = interactive ?? (!Console.IsErrorRedirected && AnsiConsole.Profile.Capabilities.Interactive);
        if (!_interactive) return;
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
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
                Console.Error.WriteLine($"{_name} {detail}");
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
                Console.Error.WriteLine($"{_name} {detail}");
            }
        }
    }
}
