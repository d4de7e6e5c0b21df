using System.CommandLine;

namespace Tessera.Cli;

/// <summary><c>--max-batch N|auto</c> of <c>serve</c> and <c>bench serve</c>: a number, or each stage's measured best.</summary>
public static class BatchLimit
{
    public static Option<string> Create(string defaultValue, string description) =>
        new("--max-batch") { Description = description, DefaultValueFactory = _ => defaultValue };

    /// <summary>The limit, or null for auto (measure each stage at batch 1, 2, 4, 8 and take the smallest within 5% of its best).</summary>
    public static int? Parse(string text)
    {
        if (string.Equals(text, "auto", StringComparison.OrdinalIgnoreCase)) return null;
        if (int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n) && n is >= 1 and <= 256) return n;
        throw new ArgumentException($"--max-batch '{text}': give a number from 1 to 256, or auto (each stage's best batch, measured at start).");
    }
}
