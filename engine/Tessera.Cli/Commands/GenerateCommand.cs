using System.CommandLine;
using Tessera.Data;
using Tessera.Engine;
using Tessera.Pipeline;

namespace Tessera.Cli.Commands;

/// <summary><c>tessera generate</c>: the main job. Runs ONNX graphs on plugin devices only (no TorchSharp).</summary>
public static class GenerateCommand
{
    public static Command Create()
    {
        var prompt = new Argument<string>("prompt") { Description = "What to draw; put text to render in quotes, e.g. 'the word \"MOON\" in red on a yellow background'." };
        var output = new Option<FileInfo>("-o", "--output") { Description = "PNG to write (with --n, -0, -1, ... are added before .png).", DefaultValueFactory = _ => new FileInfo("out.png") };
        var model = new Option<DirectoryInfo?>("--model") { Description = "Model package folder (default: the shipped models/default, or $TESSERA_MODEL)." };
        var seed = new Option<ulong>("--seed") { Description = "Seed: same seed, inputs and device give the same PNG bytes.", DefaultValueFactory = _ => 0UL };
        var steps = new Option<int?>("--steps") { Description = "Denoising steps (default from the model)." };
        var cfg = new Option<double?>("--cfg") { Description = "Classifier-free guidance scale; 1 turns it off (default from the model)." };
        var sampler = new Option<string?>("--sampler") { Description = "Decoder sampler: euler, heun (2 model runs per step) or dpm2m (default from the model)." };
        var temperature = new Option<double?>("--temperature") { Description = "AR sampling temperature; 0 is greedy (default from the model)." };
        var device = new Option<string?>("--device") { Description = "Device for both stages: auto, cpu:0, ... (see 'tessera devices'). Default: the config file's placement, else auto." };
        var arDevice = new Option<string?>("--ar-device") { Description = "Device for the AR stage (overrides --device)." };
        var decoderDevice = new Option<string?>("--decoder-device") { Description = "Device for the decoder stage (overrides --device)." };
        var count = new Option<int>("--n") { Description = "Number of images (seeds seed, seed+1, ...).", DefaultValueFactory = _ => 1 };
        var image = new Option<FileInfo?>("--image") { Description = "Image-to-image: a source image whose VQ tokens condition the AR." };
        var width = new Option<int?>("--width") { Description = "GLM-Image packages: image width, a multiple of 32 (default 1024)." };
        var height = new Option<int?>("--height") { Description = "GLM-Image packages: image height, a multiple of 32 (default 1024)." };
        var cmd = new Command("generate", "Generate an image from a prompt: tokens → AR with KV cache → DiT decoder → PNG.")
        {
            prompt, output, model, seed, steps, cfg, sampler, temperature, device, arDevice, decoderDevice, count, image, width, height,
        };
        cmd.SetAction((parse, cancel) => Task.FromResult(CliErrors.Run(() =>
        {
            int n = parse.GetValue(count);
            // The same checks as the server and the C# API (GenerationLimits), before anything is loaded.
            GenerationLimits.ValidateCount(parse.GetValue(seed), n, GenerationLimits.MaxImages, GenerationLimits.CliName);
            var outPath = OutputFiles.Check(parse.GetValue(output)!.FullName, "-o");
            var modelDir = parse.GetValue(model)?.FullName ?? ModelPackage.DefaultDirectory();
            if (Tessera.Pipeline.GlmImage.GlmImagePackage.IsGlmImage(modelDir))
                return GenerateGlmImage(parse, modelDir, outPath, cancel);
            if (parse.GetValue(width) is not null || parse.GetValue(height) is not null)
                throw new ArgumentException("--width and --height apply to GLM-Image packages; this model's size is fixed by its package.");
            var package = ModelPackage.Open(parse.GetValue(model)?.FullName ?? ModelPackage.DefaultDirectory());
            GenerationLimits.ValidatePrompt(parse.GetValue(prompt), package, GenerationLimits.MaxPromptChars, GenerationLimits.CliName);
            var check = new GenerationRequest(parse.GetValue(prompt)!) { Steps = parse.GetValue(steps), Cfg = parse.GetValue(cfg), Sampler = parse.GetValue(sampler), Temperature = parse.GetValue(temperature) };
            GenerationLimits.Validate(check, package, GenerationLimits.CliName);
            byte[]? source = null;
            if (parse.GetValue(image) is { } img)
                source = ImageFiles.ReadRgb(img.FullName, package.Manifest.Decoder.ImageSize).Rgb;

            var options = GlobalOptions.Build(parse);
            using var engine = new TesseraEngine(options);
            var d = parse.GetValue(device);
            using var generator = new ImageGenerator(engine, package,
                parse.GetValue(arDevice) ?? d ?? options.DeviceFor("ar"), parse.GetValue(decoderDevice) ?? d ?? options.DeviceFor("decoder"));
            Console.Error.WriteLine($"model {package.Manifest.Name} ({package.Directory}); AR on {generator.ArDevice}, decoder on {generator.DecoderDevice}");
            foreach (var note in generator.FallbackNotes) Console.Error.WriteLine($"fallback: {note}");
            foreach (var note in generator.VariantNotes) Console.Error.WriteLine($"variant: {note}");

            var requests = Enumerable.Range(0, n).Select(i => new GenerationRequest(parse.GetValue(prompt)!)
            {
                Seed = parse.GetValue(seed) + (ulong)i, Steps = parse.GetValue(steps), Cfg = parse.GetValue(cfg), Sampler = parse.GetValue(sampler),
                Temperature = parse.GetValue(temperature), SourceRgb = source,
            }).ToList();
            // Several images with the stages on different devices: the AR of image k+1 overlaps the decoder of image k.
            bool pipelined = n > 1 && source is null && generator.ArDevice != generator.DecoderDevice;
            if (pipelined) Console.Error.WriteLine($"pipelining {n} images: AR on {generator.ArDevice} overlaps the decoder on {generator.DecoderDevice}");
            var pipelinedResults = pipelined ? PipelinedGeneration.Run(generator, requests, cancel) : null;
            for (int i = 0; i < n; i++)
            {
                var request = requests[i];
                var result = pipelinedResults?[i] ?? GenerateWithBars(bars => generator.Generate(request, bars, cancel));
                foreach (var w in result.Warnings) Console.Error.WriteLine($"warning: {w}");
                var path = n == 1 ? outPath : Path.Combine(Path.GetDirectoryName(outPath)!, $"{Path.GetFileNameWithoutExtension(outPath)}-{i}{Path.GetExtension(outPath)}");
                OutputFiles.Write(path, result.Png, "-o");
                var t = result.Timings;
                Console.WriteLine($"wrote {path} ({result.Size}x{result.Size}, seed {request.Seed})");
                Console.WriteLine($"  encode {t.Encode.TotalMilliseconds:F0} ms | AR prefill {t.ArPrefill.TotalMilliseconds:F0} ms + decode {t.ArDecode.TotalMilliseconds:F0} ms " +
                                  $"({t.ArTokens} tokens, {t.ArTokensPerSecond:F0} tok/s) | decoder {t.Decoder.TotalMilliseconds:F0} ms ({t.DecoderSteps} steps) | total {t.Total.TotalMilliseconds:F0} ms");
            }
            return 0;
        })));
        return cmd;
    }

    /// <summary>A GLM-Image package (tessera import glm-image): its own pipeline, the same devices, seed and output options.</summary>
    private static int GenerateGlmImage(System.CommandLine.ParseResult parse, string modelDir, string outPath, CancellationToken cancel)
    {
        if (parse.GetValue<FileInfo?>("--image") is not null) throw new ArgumentException("--image: image-to-image is not built for GLM-Image packages yet.");
        int n = parse.GetValue<int>("--n");
        // Every request is checked before anything is loaded.
        var requests = Enumerable.Range(0, n).Select(i => new Tessera.Pipeline.GlmImage.GlmImageRequest(parse.GetValue<string>("prompt")!)
        {
            Seed = parse.GetValue<ulong>("--seed") + (ulong)i, Width = parse.GetValue<int?>("--width") ?? 1024, Height = parse.GetValue<int?>("--height") ?? 1024,
            Steps = parse.GetValue<int?>("--steps") ?? 50, Cfg = parse.GetValue<double?>("--cfg") ?? 1.5, Temperature = parse.GetValue<double?>("--temperature"),
        }).ToList();
        foreach (var r in requests) r.Validate();
        var package = Tessera.Pipeline.GlmImage.GlmImagePackage.Open(modelDir);
        var options = GlobalOptions.Build(parse);
        using var engine = new TesseraEngine(options);
        var d = parse.GetValue<string?>("--device");
        using var generator = new Tessera.Pipeline.GlmImage.GlmImageGenerator(engine, package,
            parse.GetValue<string?>("--ar-device") ?? d ?? options.DeviceFor("ar"), parse.GetValue<string?>("--decoder-device") ?? d ?? options.DeviceFor("decoder"));
        Console.Error.WriteLine($"model {package.Name} ({package.Directory}); AR on {generator.ArDevice}, DiT, glyph encoder and VAE on {generator.DecoderDevice}");
        for (int i = 0; i < n; i++)
        {
            var request = requests[i];
            var watch = System.Diagnostics.Stopwatch.StartNew();
            var png = GenerateWithBars(bars => generator.Generate(request, bars, cancel));
            var path = n == 1 ? outPath : Path.Combine(Path.GetDirectoryName(outPath)!, $"{Path.GetFileNameWithoutExtension(outPath)}-{i}{Path.GetExtension(outPath)}");
            OutputFiles.Write(path, png, "-o");
            Console.WriteLine($"wrote {path} ({request.Width}x{request.Height}, seed {request.Seed}, {request.Steps} steps, cfg {request.Cfg}) in {watch.Elapsed.TotalSeconds:F1} s");
        }
        return 0;
    }

    /// <summary>Runs one generation with a progress bar per stage on stderr (see <see cref="ConsoleProgress"/>).</summary>
    private static T GenerateWithBars<T>(Func<IProgress<GenerationProgress>, T> generate)
    {
        using var display = new ConsoleProgress();
        return generate(new StageBars(display));
    }
}
