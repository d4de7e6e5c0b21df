using System.CommandLine;
using Tessera.Data;
using Tessera.Datasets;

namespace Tessera.Cli.Commands;

/// <summary><c>tessera data ...</c>: the project's generated training data.</summary>
public static class DataCommand
{
    public static Command Create()
    {
        var data = new Command("data", "The generated dataset: words and shapes rendered in colours, with captions.");
        data.Subcommands.Add(Preview());
        return data;
    }

    private static Command Preview()
    {
        var output = new Option<FileInfo>("-o", "--output") { Description = "PNG to write.", DefaultValueFactory = _ => new FileInfo("data-preview.png") };
        var split = new Option<DataSplit>("--split") { Description = "train, validation (new renders of training words) or unseen (held-out words).", DefaultValueFactory = _ => DataSplit.Train };
        var count = new Option<int>("--n") { Description = "Number of samples (1-256).", DefaultValueFactory = _ => 16 };
        var seed = new Option<ulong>("--seed") { Description = "Dataset seed.", DefaultValueFactory = _ => 0UL };
        var start = new Option<long>("--start") { Description = "Index of the first sample.", DefaultValueFactory = _ => 0L };
        var cmd = new Command("preview", "Write a contact sheet of dataset samples with their captions.") { output, split, count, seed, start };
        cmd.SetAction(parse => CliErrors.Run(() =>
        {
            int n = parse.GetValue(count);
            if (n is < 1 or > 256) throw new ArgumentException($"--n is {n}; it must be from 1 to 256.");
            var generator = new SampleGenerator(parse.GetValue(seed));
            var first = parse.GetValue(start);
            var samples = Enumerable.Range(0, n).Select(i => generator.Sample(parse.GetValue(split), first + i)).ToList();
            var png = ContactSheet.Render(samples.Select(s => (s.Rgb, s.Size, s.Caption)).ToList(), columns: Math.Min(n, 6));
            var path = parse.GetValue(output)!.FullName;
            File.WriteAllBytes(path, png);
            Console.WriteLine($"wrote {path}: {n} {parse.GetValue(split).ToString().ToLowerInvariant()} samples, seed {parse.GetValue(seed)} " +
                              $"({WordSplits.Seen.Count} seen words, {WordSplits.Unseen.Count} unseen words, {Palette.LegiblePairs.Length} colour pairs)");
            return 0;
        }));
        return cmd;
    }
}
