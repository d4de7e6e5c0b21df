using System.Reflection;
using Tessera.Data;

namespace Tessera.Datasets;

/// <summary>Which words a sample may use.</summary>
public enum DataSplit
{
    /// <summary>Training words, training samples.</summary>
    Train,
    /// <summary>Training words in samples never drawn for training (new colours, shapes, positions): "seen" words.</summary>
    Validation,
    /// <summary>Words never used in training at all: "unseen" words, for measuring whether spelling generalises.</summary>
    Unseen,
}

/// <summary>
/// The word list (3-6 uppercase letters, shipped with the project) split deterministically: a word is unseen when a
/// hash of its letters falls in the last <see cref="UnseenPercent"/> percent, so adding words never moves others.
/// </summary>
public static class WordSplits
{
    public const int UnseenPercent = 10;

    private static readonly Lazy<string[]> AllWords = new(() =>
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream("Tessera.Datasets.words.txt")!;
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd().Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Where(l => !l.StartsWith('#')).ToArray();
    });

    public static IReadOnlyList<string> All => AllWords.Value;

    /// <summary>Words used for training (and, in new renders, for validation).</summary>
    public static IReadOnlyList<string> Seen { get; } = All.Where(w => !IsUnseen(w)).ToArray();

    /// <summary>Words held out of training.</summary>
    public static IReadOnlyList<string> Unseen { get; } = All.Where(IsUnseen).ToArray();

    public static IReadOnlyList<string> For(DataSplit split) => split == DataSplit.Unseen ? Unseen : Seen;

    private static bool IsUnseen(string word)
    {
        ulong h = 14695981039346656037UL; // FNV-1a
        foreach (var c in word) { h ^= c; h *= 1099511628211UL; }
        return (int)(h % 100) >= 100 - UnseenPercent;
    }
}
