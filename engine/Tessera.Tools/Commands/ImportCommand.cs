using System.CommandLine;
using Tessera.Export;
using Tessera.Cli;
using Tessera.Cli.Bench;

namespace Tessera.Tools.Commands;

/// <summary><c>tessera import glm-image</c>: the official GLM-Image snapshot → a Tessera package (libtorch loads here, as in export).</summary>
public static class ImportCommand
{
    public static Command Create()
    {
        var cmd = new Command("import", "Import a model from its official checkpoint layout into a Tessera package.");
        cmd.Subcommands.Add(GlmImage());
        return cmd;
    }

    private static Command GlmImage()
    {
        var snapshot = new Argument<DirectoryInfo?>("snapshot") { Description = "The GLM-Image Hugging Face snapshot folder (holds model_index.json).", Arity = ArgumentArity.ZeroOrOne };
        var output = new Option<DirectoryInfo?>("--out") { Description = "Package folder to write (ONNX per stage, manifest.json, import.json, tokenizer and scheduler settings)." };
        var layers = new Option<int?>("--layers") { Description = "Keep the first N layers of each transformer (a slice for small machines; the manifest says so)." };
        var fp16 = new Option<bool>("--fp16") { Description = "Also write fp16-weight variants of each stage." };
        var int8 = new Option<bool>("--int8") { Description = "Also write int8 MatMulNBits variants." };
        var int4 = new Option<bool>("--int4") { Description = "Also write int4 MatMulNBits variants." };
        var plan = new Option<bool>("--plan") { Description = "Print each stage's parameters and weight bytes at fp32/fp16/int8/int4 and which visible devices could hold it; exports nothing." };
        var writeTest = new Option<DirectoryInfo?>("--write-test-snapshot") { Description = "Test aid: write a tiny random snapshot in the official layout to this folder and stop." };
        var seed = new Option<int>("--seed") { Description = "Seed of --write-test-snapshot (default 0).", DefaultValueFactory = _ => 0 };
        var cmd = new Command("glm-image", "GLM-Image (zai-org/GLM-Image) → a Tessera package: the AR (vision_language_encoder), the DiT (transformer) and the VAE decoder exported to ONNX, each checked against TorchSharp, every checkpoint tensor accounted for. docs/glm-image.md.")
        {
            snapshot, output, layers, fp16, int8, int4, plan, writeTest, seed,
        };
        cmd.SetAction(parse => CliErrors.Run(() =>
        {
            if (parse.GetValue(writeTest) is { } testDir)
            {
                Tessera.GlmImage.GlmImageTestSnapshot.Write(testDir.FullName, parse.GetValue(seed));
                Console.WriteLine($"wrote a test snapshot (tiny random weights, official layout) to {testDir.FullName}");
                return 0;
            }
            var dir = parse.GetValue(snapshot)?.FullName ?? throw new ArgumentException("Give the snapshot folder (or --write-test-snapshot <dir>).");
            if (parse.GetValue(layers) is < 1) throw new ArgumentException("--layers must be at least 1.");
            if (parse.GetValue(plan)) return Plan(dir, parse.GetValue(layers), GlobalOptions.Build(parse));
            var outDir = parse.GetValue(output)?.FullName ?? throw new ArgumentException("--out <package folder> is required (or use --plan).");
            if (parse.GetValue(int8) && parse.GetValue(int4)) throw new ArgumentException("Give --int8 or --int4, not both.");
            ExportVariant[] variants = [.. parse.GetValue(fp16) ? new[] { ExportVariant.Fp16 } : [], .. parse.GetValue(int8) ? new[] { ExportVariant.Int8 } : [], .. parse.GetValue(int4) ? new[] { ExportVariant.Int4 } : []];
            var r = Tessera.GlmImage.GlmImageImporter.Import(dir, outDir, new Tessera.GlmImage.GlmImageImportOptions { Layers = parse.GetValue(layers), Variants = variants }, Console.Error);
            Console.WriteLine($"{"stage",-15}{"component",-26}{"MiB",9}{"worst abs err",15}  parity  tensors");
            foreach (var s in r.Stages)
                Console.WriteLine($"{s.Stage,-15}{s.Component,-26}{s.Model.Bytes / 1048576.0,9:F1}{s.Model.Parity.Max(p => p.MaxAbsError),15:E2}  {(s.Model.Passed ? "ok    " : "FAILED")}  " +
                                  $"{s.Consumed} consumed, 0 missing, 0 unexpected{string.Concat(s.NotUsed.Where(kv => kv.Value > 0).Select(kv => $", {kv.Value} {kv.Key} not used"))}");
            Console.WriteLine($"package {r.Package}; report {r.ReportPath}");
            if (!r.Passed) Console.Error.WriteLine("error: a stage does not match TorchSharp within tolerance; the package must not be used.");
            return r.Passed ? 0 : 1;
        }));
        return cmd;
    }

    private static int Plan(string snapshot, int? layers, Tessera.Engine.EngineOptions options)
    {
        var stages = Tessera.GlmImage.GlmImagePlan.Compute(snapshot, layers);
        using var engine = new Tessera.Engine.TesseraEngine(options);
        var devices = engine.Devices.Devices.Where(d => d.Info.IsAvailable && d.Info.TotalMemoryBytes is > 0).ToList();
        static string G(long b) => $"{b / 1e9:F2}";
        Console.WriteLine($"{"stage",-14}{"parameters",14}{"fp32 GB",9}{"fp16 GB",9}{"≈int8 GB",10}{"≈int4 GB",10}  fits (fp32 / int4)");
        foreach (var s in stages)
        {
            string Fits(long bytes) => string.Join(",", devices.Where(d => bytes <= d.Info.TotalMemoryBytes!.Value * 0.9).Select(d => d.Info.Id.ToString())) is { Length: > 0 } list ? list : "none";
            Console.WriteLine($"{s.Stage,-14}{s.Parameters,14:N0}{G(s.Fp32Bytes),9}{G(s.Fp16Bytes),9}{G(s.Int8Bytes),10}{G(s.Int4Bytes),10}  {Fits(s.Fp32Bytes)} / {Fits(s.Int4Bytes)}" +
                              (s.NotUsedParameters > 0 ? $"  ({s.NotUsedParameters:N0} parameters not used: image-to-image or beyond the slice)" : ""));
        }
        Console.WriteLine($"devices: {(devices.Count == 0 ? "none report their memory" : string.Join(", ", devices.Select(d => $"{d.Info.Id} {d.Info.TotalMemoryBytes / 1e9:F1} GB")))}; a stage fits where its weights take at most 90% of the device's memory (activations and the KV cache need the rest)");
        return 0;
    }
}
