using System.Text.Json.Nodes;
using Tessera.Models;
using Tessera.Models.Training;
using Tessera.Cli;
using Tessera.Cli.Bench;

namespace Tessera.Tools.Training;

/// <summary>
/// <c>tessera bench train</c>: training steps/s of the VQ stage with (a) batches made on a background thread vs
/// inline, and (b) the weight EMA fused into the optimizer step vs a separate pass. Variants alternate round by
/// round in one process; each figure is the median over rounds. No checkpoints are written.
/// </summary>
public static class TrainBenchmark
{
    private sealed record Variant(string Name, bool Background, bool Fused);

    public static JsonObject Run(int steps, int rounds, TextWriter? progress)
    {
        if (steps < 5 || rounds < 1) throw new ArgumentException("--steps must be at least 5 and --rounds at least 1.");
        Variant[] variants =
        [
            new("inline batches, separate EMA (baseline)", false, false),
            new("background batches, separate EMA", true, false),
            new("inline batches, fused EMA", false, true),
            new("background batches, fused EMA (default)", true, true),
        ];
        var config = new StageConfig { Vq = new VqConfig(), Train = new TrainConfig { Steps = steps, BatchSize = 32, WarmupSteps = 5, Seed = 3 } };
        var rates = variants.ToDictionary(v => v, _ => new List<double>());
        var temp = Path.Combine(Path.GetTempPath(), $"tessera-bench-train-{Environment.ProcessId}");
        try
        {
            // Warm-up (JIT, allocator, libtorch kernels), not recorded: otherwise it lands on whichever variant runs first.
            VqStage.Create(config with { Train = config.Train with { Steps = 5 } }, temp, new StageRunOptions(Log: TextWriter.Null, WriteCheckpoints: false)).Run();
            for (int r = 0; r < rounds; r++)
                foreach (var v in r % 2 == 0 ? variants : variants.Reverse())
                {
                    var run = VqStage.Create(config, temp, new StageRunOptions(Log: TextWriter.Null, BackgroundBatches: v.Background, FusedEma: v.Fused, WriteCheckpoints: false));
                    var result = run.Run();
                    rates[v].Add(result.StepsPerSecond);
                    progress?.WriteLine($"round {r + 1}/{rounds}: {v.Name}: {result.StepsPerSecond:F2} steps/s");
                }
        }
        finally
        {
            if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
        }
        double baseline = BenchStats.Median(rates[variants[0]]);
        return new JsonObject
        {
            ["benchmark"] = "train",
            ["stage"] = "vq (64x64, batch 32)",
            ["stepsPerRun"] = steps,
            ["rounds"] = rounds,
            ["variants"] = new JsonArray(variants.Select(v => (JsonNode)new JsonObject
            {
                ["name"] = v.Name,
                ["backgroundBatches"] = v.Background,
                ["fusedEma"] = v.Fused,
                ["stepsPerSecond"] = Math.Round(BenchStats.Median(rates[v]), 3),
                ["ratioToBaseline"] = Math.Round(BenchStats.Median(rates[v]) / baseline, 3),
            }).ToArray()),
            ["backgroundVsInline"] = Math.Round(BenchStats.Median(rates[variants[1]]) / baseline, 3),
            ["fusedVsSeparateEma"] = Math.Round(BenchStats.Median(rates[variants[2]]) / baseline, 3),
        };
    }

    public static string Table(JsonObject r)
    {
        var w = new StringWriter();
        w.WriteLine($"stage: {r["stage"]}; {r["rounds"]} rounds x {r["stepsPerRun"]} steps per variant");
        w.WriteLine($"{"variant",-44}{"steps/s",10}{"vs baseline",13}");
        foreach (var v in r["variants"]!.AsArray())
            w.WriteLine($"{v!["name"],-44}{v["stepsPerSecond"]!.GetValue<double>(),10:F2}{v["ratioToBaseline"]!.GetValue<double>(),13:F3}");
        w.Write($"background batch producer: x{r["backgroundVsInline"]}; fused EMA: x{r["fusedVsSeparateEma"]}");
        return w.ToString();
    }
}
