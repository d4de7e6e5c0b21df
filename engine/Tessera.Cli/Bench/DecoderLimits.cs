using System.Diagnostics;
using System.Text.Json.Nodes;
using Tessera.Abstractions;
using Tessera.Engine;
using Tessera.Onnx;
using Tessera.Pipeline;
using Tessera.Pipeline.Sampling;

namespace Tessera.Cli.Bench;

/// <summary>
/// Part of <c>tessera bench generate</c>: the DiT decoder against the device's compute limit and its own baselines,
/// all in one run. (1) The package's default sampler and steps vs 20-step Euler (decoder time, same inputs, CFG off as
/// shipped); (2) the DiT's achieved GFLOP/s — MatMul FLOPs counted from the shapes the graph runs at
/// (<see cref="MatMulFlops"/>), times model evaluations, over the decoder's time — and its ratio to a large square
/// MatMul's GFLOP/s measured through the same device and thread count; (3) the per-device CFG choice the decoder made
/// (batched vs two passes, measured at its first guided step).
/// </summary>
public static class DecoderLimits
{
    /// <summary>Side of the square MatMul whose rate stands for the device's compute peak.</summary>
    public const int PeakSize = 1024;

    public static JsonObject Measure(TesseraEngine engine, string device, ImageGenerator generator, int[] target, byte[] glyphs, int repeats, TextWriter? log)
    {
        var package = generator.Package;
        var d = package.Manifest.Sampling;
        int grid = package.Manifest.Ar.TargetGrid;

        log?.WriteLine($"decoder: default ({d.Sampler}, {d.Steps} steps) vs 20-step Euler");
        double Decode(string sampler, int steps) => BenchStats.MedianSeconds(repeats,
            () => generator.Decoder.Sample(target, grid, glyphs, 0, steps, d.Cfg, d.Shift, sampler: sampler), warmups: 1);
        // Alternating rounds, so drift on a shared machine hits both alike.
        var euler = new List<double>();
        var shipped = new List<double>();
        for (int round = 0; round < 3; round++)
        {
            euler.Add(Decode(FlowSamplers.Euler, 20));
            shipped.Add(Decode(d.Sampler, d.Steps));
        }
        double eulerSeconds = BenchStats.Median(euler), shippedSeconds = BenchStats.Median(shipped);
        int shippedEvaluations = FlowSamplers.Evaluations(d.Sampler, d.Steps);
        int rowsPerEvaluation = d.Cfg == 1.0 ? 1 : 2;

        log?.WriteLine("DiT FLOPs from the graph's shapes");
        long flops = DitFlopsPerRow(engine, device, package);
        double ditGflops = flops * (double)rowsPerEvaluation * shippedEvaluations / shippedSeconds / 1e9;

        log?.WriteLine($"MatMul peak: {PeakSize}x{PeakSize} on {device}");
        double peak = MatMulPeakGflops(engine, device, PeakSize);

        log?.WriteLine("CFG: the decoder's own choice (first guided step)");
        generator.Decoder.Sample(target, grid, glyphs, 0, 1, d.Cfg == 1.0 ? 3.0 : d.Cfg, d.Shift);
        var choice = generator.Decoder.CfgBatching!;

        return new JsonObject
        {
            ["decoderSampler"] = d.Sampler,
            ["decoderSteps"] = d.Steps,
            ["decoderEvaluations"] = shippedEvaluations,
            ["decoderSecondsDefault"] = Math.Round(shippedSeconds, 4),
            ["decoderSecondsEuler20"] = Math.Round(eulerSeconds, 4),
            ["decoderSpeedupVsEuler20"] = Math.Round(eulerSeconds / shippedSeconds, 2),
            ["ditFlopsPerImageRow"] = flops,
            ["ditGflopsPerSecond"] = Math.Round(ditGflops, 2),
            ["matmulPeakGflopsPerSecond"] = Math.Round(peak, 2),
            ["matmulPeakSize"] = PeakSize,
            ["ditComputeRatio"] = Math.Round(ditGflops / peak, 3),
            ["cfgChoice"] = choice.Batched ? "batched" : "two passes",
            ["cfgChoiceBatchedSeconds"] = Math.Round(choice.BatchedSeconds, 5),
            ["cfgChoiceTwoPassSeconds"] = Math.Round(choice.TwoPassSeconds, 5),
            ["cfgChoiceBitIdentical"] = choice.Identical,
        };
    }

    public static string Table(JsonObject r) =>
        $"{$"decoder s: Euler 20 vs {r["decoderSampler"]} {r["decoderSteps"]} ({r["decoderEvaluations"]} evals)",-44}{r["decoderSecondsEuler20"],12}{r["decoderSecondsDefault"],12}{r["decoderSpeedupVsEuler20"],8}\n" +
        $"{$"DiT GFLOP/s: MatMul {r["matmulPeakSize"]}^2 peak vs DiT",-44}{r["matmulPeakGflopsPerSecond"],12}{r["ditGflopsPerSecond"],12}{r["ditComputeRatio"],8}\n" +
        $"CFG per device: {r["cfgChoice"]} (one evaluation: batched {r["cfgChoiceBatchedSeconds"]} s, two passes {r["cfgChoiceTwoPassSeconds"]} s; bit-identical: {r["cfgChoiceBitIdentical"]})";

    /// <summary>MatMul FLOPs of one decoder evaluation of one image row (batch 1), from a probed run of the graph.</summary>
    public static long DitFlopsPerRow(TesseraEngine engine, string device, ModelPackage package)
    {
        var (probed, products) = MatMulFlops.Probe(OnnxModelFile.Load(package.FileFor("decoder")));
        using var compiled = engine.Compile(ModelSource.FromBytes(Google.Protobuf.MessageExtensions.ToByteArray(probed), "decoder (probed)"), device);
        var shape = package.Manifest.Decoder;
        int s = shape.ImageSize, g = shape.TokenGrid;
        var feeds = new Dictionary<string, ITensorValue>
        {
            ["x_t"] = HostTensor.Create(new float[3 * s * s], 1, 3, s, s),
            ["t"] = HostTensor.Create(new[] { 0.5f }, 1),
            ["prior"] = HostTensor.Create(new long[g * g], 1, g, g),
            ["glyphs"] = HostTensor.Create(new long[shape.MaxGlyphs], 1, shape.MaxGlyphs),
        };
        if (shape.GlyphImage) feeds["glyph_image"] = HostTensor.Create(new float[s * s], 1, 1, s, s);
        var names = products.SelectMany(p => new[] { p.A, p.Y }).Distinct().ToList();
        using var outputs = compiled.Model.Run(feeds, names);
        return MatMulFlops.Count(products, name => outputs[name].Shape);
    }

    /// <summary>GFLOP/s of an n x n by n x n float MatMul on the device: the best of several runs after a warm-up.</summary>
    public static double MatMulPeakGflops(TesseraEngine engine, string device, int n)
    {
        var g = new OnnxGraphBuilder("matmul_peak");
        var a = g.Input("a", TensorElementType.Float32, OnnxGraphBuilder.Dims(n, n));
        var rng = new Random(5);
        var w = new float[n * n];
        for (int i = 0; i < w.Length; i++) w[i] = (float)(rng.NextDouble() - 0.5);
        g.Output(g.Node("MatMul", a, g.Initializer("b", w, n, n)), "y", TensorElementType.Float32, OnnxGraphBuilder.Dims(n, n));
        using var compiled = engine.Compile(ModelSource.FromBytes(g.ToBytes(), "matmul peak"), device);
        var input = new Dictionary<string, ITensorValue> { ["a"] = HostTensor.Create(w, n, n) };
        compiled.Model.Run(input).Dispose();
        double best = double.MaxValue;
        for (int i = 0; i < 7; i++)
        {
            var watch = Stopwatch.StartNew();
            compiled.Model.Run(input).Dispose();
            best = Math.Min(best, watch.Elapsed.TotalSeconds);
        }
        return 2.0 * n * n * n / best / 1e9;
    }
}
