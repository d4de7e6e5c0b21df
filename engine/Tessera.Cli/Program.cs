using System.CommandLine;
using System.Runtime.InteropServices;
using Tessera.Cli.Commands;

namespace Tessera.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        // Verbs of the tools install (training, export, import, packaging) run in that install's process.
        if (ToolsInstall.Handles(args)) return ToolsInstall.Forward(args);
        var root = new RootCommand("Tessera: hybrid image generation (autoregressive tokens + diffusion decoder) on pluggable hardware.");
        GlobalOptions.AddTo(root);
        root.Subcommands.Add(GenerateCommand.Create());
        root.Subcommands.Add(EvalCommand.Create());
        root.Subcommands.Add(DevicesCommand.Create());
        root.Subcommands.Add(PluginCommand.Create());
        root.Subcommands.Add(ServeCommand.Create());
        root.Subcommands.Add(NodeCommand.Create());
        root.Subcommands.Add(ClusterCommand.Create());
        root.Subcommands.Add(RunCommand.Create());
        root.Subcommands.Add(BenchCommand.Create());
        root.Subcommands.Add(DataCommand.Create());
        ToolsInstall.AddPlaceholders(root);
        return Run(root, args);
    }

    /// <summary>
    /// Parses and runs <paramref name="args"/> against <paramref name="root"/> the way every Tessera executable does:
    /// parse errors as one line, SIGTERM/SIGINT as cancellation with a grace period, failures through
    /// <see cref="CliErrors"/>. Used by <c>tessera</c> and by the tools install's <c>tessera-tools</c>.
    /// </summary>
    public static int Run(RootCommand root, string[] args)
    {
        int code;
        try
        {
            var parse = root.Parse(args);
            if (parse.Errors.Count > 0 && parse.Action is System.CommandLine.Invocation.ParseErrorAction)
            {
                // One line, .NET type names in words; the usage is one --help away.
                var first = parse.Errors[0].Message;
                Console.Error.WriteLine($"error: {CliErrors.Friendly(first)}{(parse.Errors.Count > 1 ? $" (and {parse.Errors.Count - 1} more)" : "")} See '{parse.CommandResult.Command.Name} --help'.");
                code = CliErrors.UsageError;
            }
            else
            {
                // Our own SIGTERM/SIGINT handling (System.CommandLine's is off): the first signal cancels the command,
                // which stops at its next step (training writes a checkpoint); a command that does not stop within the
                // grace period, or a second signal, ends the process with one line.
                using var stop = new CancellationTokenSource();
                using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; Stop(stop, "SIGTERM", 143); });
                using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; Stop(stop, "SIGINT", 130); });
                code = parse.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = null }, stop.Token)
                    .GetAwaiter().GetResult();
            }
        }
        catch (Exception e)
        {
            code = CliErrors.Report(e);
        }
        if (Environment.GetEnvironmentVariable("TESSERA_DIAGNOSTICS") == "assemblies") ReportLoaded();
        return code;
    }

    /// <summary>Seconds a command has to stop after SIGTERM or Ctrl-C before the process exits anyway.</summary>
    public const int StopGraceSeconds = 10;

    private static void Stop(CancellationTokenSource stop, string signal, int exitCode)
    {
        if (stop.IsCancellationRequested)
        {
            Console.Error.WriteLine($"error: {signal} again; exiting now.");
            Environment.Exit(exitCode);
        }
        stop.Cancel();
        var timer = new Thread(() =>
        {
            Thread.Sleep(TimeSpan.FromSeconds(StopGraceSeconds));
            Console.Error.WriteLine($"error: tessera did not stop within {StopGraceSeconds} s of {signal} (it is blocked, e.g. in a plugin); exiting.");
            Environment.Exit(exitCode);
        }) { IsBackground = true, Name = "tessera-stop-grace" };
        timer.Start();
    }

    /// <summary>
    /// With TESSERA_DIAGNOSTICS=assemblies, lists on stderr what this process loaded (managed assemblies and native
    /// libraries), so an operator can check that e.g. the inference path never loads TorchSharp or libtorch.
    /// </summary>
    private static void ReportLoaded()
    {
        var managed = AppDomain.CurrentDomain.GetAssemblies().Select(a => a.GetName().Name).Order(StringComparer.Ordinal);
        Console.Error.WriteLine($"loaded assemblies: {string.Join(", ", managed)}");
        if (File.Exists("/proc/self/maps"))
        {
            var native = File.ReadLines("/proc/self/maps").Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries).LastOrDefault() ?? "")
                .Where(p => p.Contains(".so")).Select(Path.GetFileName).Distinct().Order(StringComparer.Ordinal);
            Console.Error.WriteLine($"loaded native libraries: {string.Join(", ", native)}");
        }
    }
}
