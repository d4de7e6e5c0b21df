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
        catch (Exception e) when (e is TesseraException or ArgumentException or FileNotFoundException or DirectoryNotFoundException or InvalidDataException or NotSupportedException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return e is ArgumentException ? UsageError : Failure;
        }
    }
}
