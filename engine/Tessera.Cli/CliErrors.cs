using System.Text.RegularExpressions;
using Tessera.Abstractions;

namespace Tessera.Cli;

/// <summary>
/// The one error path of the CLI: every failure becomes one line on stderr ("error: ...") and a non-zero exit code,
/// never a stack trace. Expected failures (bad input, missing files, unavailable devices) keep their message; anything
/// else is reported by type and message with a pointer to TESSERA_DIAGNOSTICS=trace, which prints the trace.
/// </summary>
public static partial class CliErrors
{
    public const int UsageError = 2;
    public const int Failure = 1;
    /// <summary>An error Tessera did not expect (a bug, or the machine ran out of something).</summary>
    public const int Internal = 70;
    public const int Interrupted = 130;

    public static int Run(Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception e)
        {
            return Report(e);
        }
    }

    /// <summary>The same for commands that run asynchronously (serve).</summary>
    public static async Task<int> RunAsync(Func<Task<int>> body)
    {
        try
        {
            return await body();
        }
        catch (Exception e)
        {
            return Report(e);
        }
    }

    private static bool IsExpected(Exception e) =>
        e is TesseraException or ArgumentException or FileNotFoundException or DirectoryNotFoundException or InvalidDataException
            or NotSupportedException or IOException or UnauthorizedAccessException or System.Text.Json.JsonException;

    /// <summary>Writes the one line for <paramref name="e"/> and returns the exit code.</summary>
    public static int Report(Exception e)
    {
        while (e is AggregateException { InnerExceptions.Count: 1 } or TypeInitializationException { InnerException: not null } or System.Reflection.TargetInvocationException { InnerException: not null })
            e = e.InnerException!;
        if (Environment.GetEnvironmentVariable("TESSERA_DIAGNOSTICS") == "trace") Console.Error.WriteLine(e.ToString());
        if (e is OperationCanceledException)
        {
            Console.Error.WriteLine("error: interrupted.");
            return Interrupted;
        }
        if (IsExpected(e))
        {
            Console.Error.WriteLine($"error: {OneLine(e.Message)}");
            return e is ArgumentException ? UsageError : Failure;
        }
        var what = e switch
        {
            OutOfMemoryException => "ran out of memory; the input asks for more than this machine has (check sizes and dimensions)",
            InsufficientExecutionStackException or StackOverflowException => "recursed too deeply on this input",
            _ => $"failed unexpectedly ({e.GetType().Name}: {OneLine(e.Message)})",
        };
        Console.Error.WriteLine($"error: tessera {what}. This is a bug if the input was valid: report it with TESSERA_DIAGNOSTICS=trace output.");
        return Internal;
    }

    /// <summary>A message as one line: inner newlines joined with "; ".</summary>
    public static string OneLine(string message) => NewLines().Replace(message.Trim(), "; ");

    /// <summary>
    /// A System.CommandLine parse error with .NET type names in words: "as expected type 'System.Nullable`1[System.Int32]'"
    /// becomes "as a whole number".
    /// </summary>
    public static string Friendly(string message) => TypeName().Replace(OneLine(message), m => "as " + Describe(m.Groups[1].Value));

    private static string Describe(string type)
    {
        var inner = NullableOf().Match(type) is { Success: true } n ? n.Groups[1].Value : type;
        return inner switch
        {
            "System.Int32" => $"a whole number from {int.MinValue} to {int.MaxValue}",
            "System.Int64" => $"a whole number from {long.MinValue} to {long.MaxValue}",
            "System.UInt64" => $"a whole number from 0 to {ulong.MaxValue}",
            "System.Double" or "System.Single" => "a number",
            "System.Boolean" => "true or false",
            "System.IO.FileInfo" => "a file path",
            "System.IO.DirectoryInfo" => "a folder path",
            var t when t.StartsWith("Tessera.", StringComparison.Ordinal) => "one of the allowed values (see --help)",
            var t => $"a value of type {t[(t.LastIndexOf('.') + 1)..]}",
        };
    }

    [GeneratedRegex(@"\s*[\r\n]+\s*")]
    private static partial Regex NewLines();

    [GeneratedRegex(@"as expected type '([^']+)'")]
    private static partial Regex TypeName();

    [GeneratedRegex(@"^System\.Nullable`1\[(.+)\]$")]
    private static partial Regex NullableOf();
}
