using System.Diagnostics;
using System.Text.Json.Nodes;
using Microsoft.ML.OnnxRuntime;
using Tessera.Abstractions;
using Tessera.Engine;
using Tessera.Onnx;

namespace Tessera.Cli.Bench;

/// <summary>
/// Measures what the engine adds on top of ONNX Runtime. The same graph and input run through
/// (a) <see cref="TesseraEngine"/> → plugin device → compiled model → device tensor → host copy, and
/// (b) a plain <see cref="InferenceSession"/> with OrtValues → host copy (the baseline), and
/// (c) a second plain session, so the run also shows its own noise floor (the A/A ratio b'/b).
/// Calls alternate path by path, rotating the order each round; each path's figure is the median of per-round medians.
/// </summary>
/// <remarks>
/// Sessions are single-threaded by default: with several sessions each owning an intra-op pool on a 2-core machine,
/// an idle pool's spinning threads slow whichever session runs next (an A/A ratio of ~0.95 was measured that way),
/// which would swamp the few-percent effect being measured. <c>--threads</c> changes it.
/// </remarks>
public static class OverheadBenchmark
{
    public sealed record Result(string Device, int Hidden, int Layers, int Threads, int Rounds, int RunsPerRound,
        double EngineMs, double DirectMs, double DirectAgainMs, double TinyEngineUs, double TinyDirectUs)
    {
        /// <summary>What the engine adds per call, measured on a graph too small for memory effects to matter.</summary>
        public double FixedOverheadUs => TinyEngineUs - TinyDirectUs;
        public double FixedOverheadPercentOfGraph => FixedOverheadUs / 1000 / DirectMs * 100;
        public double Ratio => EngineMs / DirectMs;
        public double NoiseRatio => DirectAgainMs / DirectMs;
        public double OverheadPercent => (Ratio - 1) * 100;

        public JsonObject ToJson() => new()
        {
            ["benchmark"] = "overhead",
            ["device"] = Device,
            ["graph"] = $"MLP batch 1, hidden {Hidden}, {Layers} layers",
            ["threads"] = Threads,
            ["rounds"] = Rounds,
            ["runsPerRound"] = RunsPerRound,
            ["engineMedianMs"] = Math.Round(EngineMs, 6),
            ["directMedianMs"] = Math.Round(DirectMs, 6),
            ["directAgainMedianMs"] = Math.Round(DirectAgainMs, 6),
            ["ratio"] = Math.Round(Ratio, 4),
            ["noiseFloorRatio"] = Math.Round(NoiseRatio, 4),
            ["overheadPercent"] = Math.Round(OverheadPercent, 2),
            ["tinyGraphEngineUs"] = Math.Round(TinyEngineUs, 2),
            ["tinyGraphDirectUs"] = Math.Round(TinyDirectUs, 2),
            ["fixedOverheadUsPerCall"] = Math.Round(FixedOverheadUs, 2),
            ["fixedOverheadPercentOfGraph"] = Math.Round(FixedOverheadPercentOfGraph, 3),
        };

        public string ToTable() =>
            $"graph: MLP batch 1, hidden {Hidden}, {Layers} layers on {Device}, {Threads} thread(s); {Rounds} rounds x {RunsPerRound} alternating calls\n" +
            $"{"path",-40}{"median ms/run",14}{"vs baseline",13}\n" +
            $"{"direct InferenceSession (baseline)",-40}{DirectMs,14:F4}{1.0,13:F3}\n" +
            $"{"direct InferenceSession again (A/A)",-40}{DirectAgainMs,14:F4}{NoiseRatio,13:F3}\n" +
            $"{"tessera engine (plugin + IOBinding)",-40}{EngineMs,14:F4}{Ratio,13:F3}\n" +
            $"engine overhead: {OverheadPercent:+0.0;-0.0}% (aim <= 5%); the A/A line shows this run's noise floor\n" +
            $"fixed cost per call (tiny 16-wide graph): engine {TinyEngineUs:F2} us vs direct {TinyDirectUs:F2} us = {FixedOverheadUs:F2} us, " +
            $"{FixedOverheadPercentOfGraph:F2}% of the graph above";
    }

    /// <summary>A batch-1 MLP: <paramref name="layers"/> x (MatMul, Add bias, Relu), deterministic weights.</summary>
    public static byte[] BuildMlp(int hidden, int layers, int seed = 7)
    {
        var rng = new Random(seed);
        var g = new OnnxGraphBuilder("bench_mlp");
        var x = g.Input("x", TensorElementType.Float32, OnnxGraphBuilder.Dims(1, hidden));
        float scale = 1f / MathF.Sqrt(hidden);
        for (int l = 0; l < layers; l++)
        {
            using var _ = g.Scope($"layers.{l}");
            var w = new float[hidden * hidden];
            for (int i = 0; i < w.Length; i++) w[i] = (float)(rng.NextDouble() * 2 - 1) * scale;
            var b = new float[hidden];
            x = g.Node("Relu", g.Node("Add", g.Node("MatMul", x, g.Initializer($"layers.{l}.weight", w, hidden, hidden)), g.Initializer($"layers.{l}.bias", b, hidden)));
        }
        g.Output(x, "y", TensorElementType.Float32, OnnxGraphBuilder.Dims(1, hidden));
        return g.ToBytes();
    }

    public static Result Run(EngineOptions options, int hidden, int layers, int threads, int rounds, int runsPerRound, TextWriter? progress)
    {
        if (hidden < 1 || layers < 1 || threads < 1 || rounds < 1 || runsPerRound < 1)
            throw new ArgumentException("--hidden, --layers, --threads, --rounds and --runs-per-round must be positive.");
        using var engine = new TesseraEngine(options);
        progress?.WriteLine($"graph: MLP hidden {hidden}, {layers} layers");
        var main = Measure(engine, BuildMlp(hidden, layers), hidden, threads, rounds, runsPerRound, progress);
        progress?.WriteLine("graph: MLP hidden 16, 1 layer (fixed per-call cost)");
        var tiny = Measure(engine, BuildMlp(16, 1), 16, threads, rounds, runsPerRound * 5, progress);
        return new Result("cpu:0", hidden, layers, threads, rounds, runsPerRound,
            main.Engine, main.Direct, main.DirectAgain, tiny.Engine * 1000, tiny.Direct * 1000);
    }

    private static (double Direct, double DirectAgain, double Engine) Measure(
        TesseraEngine engine, byte[] bytes, int hidden, int threads, int rounds, int runsPerRound, TextWriter? progress)
    {
        var input = new float[hidden];
        for (int i = 0; i < hidden; i++) input[i] = (i % 17) / 17f - 0.5f;
        var output = new float[hidden];

        var compileOptions = new CompileOptions { IntraOpThreads = threads, UseCompiledModelCache = false };
        using var compiled = engine.Compile(ModelSource.FromBytes(bytes, "bench_mlp"), "cpu:0", compileOptions);
        var feeds = new Dictionary<string, ITensorValue> { ["x"] = HostTensor.Create(input, 1, hidden) };
        void EngineRun()
        {
            using var outs = compiled.Model.Run(feeds);
            outs["y"].CopyTo<float>(output);
        }

        using var so = new SessionOptions { IntraOpNumThreads = threads, GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL };
        using var direct = new DirectPath(bytes, so, input, output);
        using var directAgain = new DirectPath(bytes, so, input, output);

        Action[] paths = [direct.Run, directAgain.Run, EngineRun];
        var perRound = paths.Select(_ => new List<double>()).ToArray();
        var times = paths.Select(_ => new double[runsPerRound]).ToArray();
        for (int i = 0; i < 50; i++) foreach (var p in paths) p();
        for (int r = 0; r < rounds; r++)
        {
            for (int i = 0; i < runsPerRound; i++)
                for (int k = 0; k < paths.Length; k++)
                {
                    int p = (k + i + r) % paths.Length;
                    long t0 = Stopwatch.GetTimestamp();
                    paths[p]();
                    times[p][i] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
                }
            for (int p = 0; p < paths.Length; p++) perRound[p].Add(BenchStats.Median(times[p]));
            progress?.WriteLine($"  round {r + 1}/{rounds}: direct {perRound[0][^1]:F4} ms, direct again {perRound[1][^1]:F4} ms, engine {perRound[2][^1]:F4} ms");
        }
        return (BenchStats.Median(perRound[0]), BenchStats.Median(perRound[1]), BenchStats.Median(perRound[2]));
    }

    /// <summary>The baseline: ONNX Runtime used directly, the leanest way its C# API allows.</summary>
    private sealed class DirectPath(byte[] model, SessionOptions options, float[] input, float[] output) : IDisposable
    {
        private readonly InferenceSession _session = new(model, options);
        private readonly RunOptions _runOptions = new();
        private readonly string[] _in = ["x"], _out = ["y"];
        private readonly long[] _shape = [1, input.Length];

        public void Run()
        {
            using var x = OrtValue.CreateTensorValueFromMemory(input, _shape);
            using var outs = _session.Run(_runOptions, _in, [x], _out);
            outs[0].GetTensorDataAsSpan<float>().CopyTo(output);
        }

        public void Dispose()
        {
            _session.Dispose();
            _runOptions.Dispose();
        }
    }

}
