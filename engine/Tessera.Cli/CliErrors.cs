using Tessera.Abstractions;

namespace Tessera.Cli;

/// <summary>Turns expected failures into one clear line on stderr and a non-zero exit code.</summary>
public static class CliErrors
{
    public const int UsageError = 2;
    public const int Failure = 1;

    public static int Run(Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception e) when (IsExpected(e))
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
        catch (Exception e) when (IsExpected(e))
        {
            return Report(e);
        }
    }

    private static bool IsExpected(Exception e) =>
        e is TesseraException or ArgumentException or FileNotFoundException or DirectoryNotFoundException or InvalidDataException or NotSupportedException;

    private static int Report(Exception e)
    {
        Console.Error.WriteLine($"error: {e.Message}");
        return e is ArgumentException ? UsageError : Failure;
    }
}
