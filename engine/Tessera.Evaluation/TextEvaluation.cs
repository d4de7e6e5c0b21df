using System.Text.Json.Nodes;
using Tessera.Data;
using Tessera.Datasets;
using Tessera.Pipeline;

namespace Tessera.Evaluation;

/// <summary>OCR scores of one group of prompts.</summary>
public sealed record TextScores(int Count, double WordAccuracy, double EditDistance, double CeilingWordAccuracy, double CeilingEditDistance);

/// <summary>One evaluated prompt.</summary>
public sealed record TextCase(string Word, bool Seen, string Prompt, string ModelRead, string GroundTruthRead, byte[] Rgb);

/// <summary>
/// <c>tessera eval text</c>: generates images for validation prompts through the full pipeline — half with words seen
/// in training (new renders), half with held-out words — reads them with OCR, and reports word accuracy and normalised
/// edit distance per group, next to the same OCR on the ground-truth renders of the same captions (the ceiling).
/// </summary>
public static class TextEvaluation
{
    public static (TextScores Seen, TextScores Unseen, List<TextCase> Cases) Run(ImageGenerator generator, Ocr ocr, int n, ulong seed,
        int? steps, IProgress<(int Done, int Total)>? progress = null, CancellationToken cancel = default, double? cfg = null, string? sampler = null)
    {
        var data = new SampleGenerator(seed, generator.Package.Manifest.Decoder.ImageSize);
        var cases = new List<TextCase>();
        for (int i = 0; i < n; i++)
        {
            cancel.ThrowIfCancellationRequested();
            bool seen = i % 2 == 0;
            var sample = data.Sample(seen ? DataSplit.Validation : DataSplit.Unseen, i / 2);
            var result = generator.Generate(new GenerationRequest(sample.Caption) { Seed = seed + (ulong)i, Steps = steps, Cfg = cfg, Sampler = sampler }, cancel: cancel);
            cases.Add(new TextCase(sample.Word, seen, sample.Caption, ocr.Read(result.Rgb, result.Size), ocr.Read(sample.Rgb, sample.Size), result.Rgb));
            progress?.Report((i + 1, n));
        }
        return (Score(cases.Where(c => c.Seen).ToList()), Score(cases.Where(c => !c.Seen).ToList()), cases);
    }

    private static TextScores Score(List<TextCase> cases) => cases.Count == 0
        ? new TextScores(0, double.NaN, double.NaN, double.NaN, double.NaN)
        : new TextScores(cases.Count,
            cases.Average(c => c.ModelRead == c.Word ? 1.0 : 0.0),
            cases.Average(c => Ocr.NormalizedEditDistance(c.ModelRead, c.Word)),
            cases.Average(c => c.GroundTruthRead == c.Word ? 1.0 : 0.0),
            cases.Average(c => Ocr.NormalizedEditDistance(c.GroundTruthRead, c.Word)));

    public static JsonObject ToJson(TextScores seen, TextScores unseen, IEnumerable<TextCase> cases) => new()
    {
        ["seen"] = Json(seen),
        ["unseen"] = Json(unseen),
        ["cases"] = new JsonArray(cases.Select(c => (JsonNode)new JsonObject
        {
            ["word"] = c.Word, ["seen"] = c.Seen, ["prompt"] = c.Prompt, ["modelRead"] = c.ModelRead, ["groundTruthRead"] = c.GroundTruthRead,
        }).ToArray()),
    };

    private static JsonObject Json(TextScores s) => new()
    {
        ["count"] = s.Count,
        ["wordAccuracy"] = Math.Round(s.WordAccuracy, 4),
        ["normalizedEditDistance"] = Math.Round(s.EditDistance, 4),
        ["groundTruthWordAccuracy"] = Math.Round(s.CeilingWordAccuracy, 4),
        ["groundTruthEditDistance"] = Math.Round(s.CeilingEditDistance, 4),
    };
}
