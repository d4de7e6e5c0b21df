using System.CommandLine;
using System.Text.Json;
using Tessera.Data;
using Tessera.Datasets;
using Tessera.Engine;
using Tessera.Pipeline;
using Tessera.Evaluation;

namespace Tessera.Cli.Commands;

/// <summary><c>tessera eval text</c>: OCR word accuracy of generated images, seen vs unseen words, with the ground-truth ceiling.</summary>
public static class EvalCommand
{
    public static Command Create()
    {
        var eval = new Command("eval", "Evaluate a model package.");
        var n = new Option<int>("--n") { Description = "Prompts to evaluate, half with seen words, half with unseen (default 200).", DefaultValueFactory = _ => 200 };
        var json = new Option<bool>("--json") { Description = "Print JSON (with every case)." };
        var model = new Option<DirectoryInfo?>("--model") { Description = "Model package (default: the shipped one)." };
        var device = new Option<string>("--device") { Description = "Device for both stages.", DefaultValueFactory = _ => "auto" };
        var seed = new Option<ulong>("--seed") { Description = "Seed for prompts and sampling.", DefaultValueFactory = _ => 0UL };
        var steps = new Option<int?>("--steps") { Description = "Denoising steps (default from the model)." };
        var cfg = new Option<double?>("--cfg") { Description = "Classifier-free guidance scale (default from the model)." };
        var sampler = new Option<string?>("--sampler") { Description = "Decoder sampler: euler, heun or dpm2m (default from the model)." };
        var sheet = new Option<FileInfo?>("--sheet") { Description = "Also write a contact sheet of the first 24 images with what OCR read." };
        var text = new Command("text", "Generate images for validation prompts and read them with OCR (tesseract): word accuracy and edit distance, seen vs unseen words, next to the ground-truth ceiling.")
        {
            n, json, model, device, seed, steps, cfg, sampler, sheet,
        };
        text.SetAction((parse, cancel) => Task.FromResult(CliErrors.Run(() =>
        {
            int count = parse.GetValue(n);
            if (count < 2) throw new ArgumentException("--n must be at least 2 (one seen, one unseen).");
            var ocr = Ocr.Find(out var whyNot);
            if (ocr is null) { Console.Error.WriteLine($"skipped: {whyNot}"); return 0; }
            var package = ModelPackage.Open(parse.GetValue(model)?.FullName ?? ModelPackage.DefaultDirectory());
            using var engine = new TesseraEngine(GlobalOptions.Build(parse));
            using var generator = new ImageGenerator(engine, package, parse.GetValue(device)!, parse.GetValue(device)!);
            var progress = new Progress<(int Done, int Total)>(p => { if (p.Done % 10 == 0 || p.Done == p.Total) Console.Error.WriteLine($"evaluated {p.Done}/{p.Total}"); });
            var (seenScores, unseenScores, cases) = TextEvaluation.Run(generator, ocr, count, parse.GetValue(seed), parse.GetValue(steps), progress, cancel, parse.GetValue(cfg), parse.GetValue(sampler));
            if (parse.GetValue(sheet) is { } sheetFile)
                File.WriteAllBytes(sheetFile.FullName, ContactSheet.Render(cases.Take(24).Select(c => (c.Rgb, 64, $"{c.Word} → OCR '{c.ModelRead}'{(c.Seen ? "" : " (unseen)")}")).ToList(), columns: 6));
            if (parse.GetValue(json))
            {
                Console.WriteLine(TextEvaluation.ToJson(seenScores, unseenScores, cases).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
                return 0;
            }
            Console.WriteLine($"model {package.Manifest.Name}: {count} prompts, sampler {parse.GetValue(sampler) ?? package.Manifest.Sampling.Sampler}, {parse.GetValue(steps) ?? package.Manifest.Sampling.Steps} steps, OCR = tesseract --psm 7 on 4x upscaled images");
            Console.WriteLine($"{"words",-8}{"n",5}{"word acc",11}{"edit dist",11}{"ceiling acc",13}{"ceiling dist",14}");
            foreach (var (label, s) in new[] { ("seen", seenScores), ("unseen", unseenScores) })
                Console.WriteLine($"{label,-8}{s.Count,5}{s.WordAccuracy,11:F3}{s.EditDistance,11:F3}{s.CeilingWordAccuracy,13:F3}{s.CeilingEditDistance,14:F3}");
            return 0;
        })));
        eval.Subcommands.Add(text);
        return eval;
    }
}
