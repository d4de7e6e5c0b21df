using Tessera.Models.Export;
using Tessera.Export;
using Tessera.Cli;
using Tessera.Cli.Bench;

namespace Tessera.Tools.Training;

/// <summary><c>tessera export</c>'s shell over the exporters: runs one and prints its parity table; exits 1 when parity fails.</summary>
public static class ExportRunner
{
    public static int Run(string stage, string checkpoint, string outDir, bool externalData, ExportVariant[] variants,
        int opset = ExportContext.DefaultOpset, string[]? optimizeFor = null, Tessera.Engine.EngineOptions? engineOptions = null)
    {
        if (!File.Exists(checkpoint) && !Directory.Exists(checkpoint))
            throw new FileNotFoundException($"Checkpoint {checkpoint} does not exist (give a .tsr file or a training run folder).");
        if (opset is < ExportContext.MinOpset or > ExportContext.MaxOpset)
            throw new ArgumentException($"--opset {opset}: the exporter writes opsets {ExportContext.MinOpset} to {ExportContext.MaxOpset}.");
        var r = StageExporter.Export(stage, checkpoint, outDir, externalData, Console.Error, opset, variants);
        bool ok = PrintParity(r);
        if (ok && optimizeFor is { Length: > 0 })
            foreach (var w in OptimizedGraphs.WriteFor(r.ModelPath, outDir, stage, optimizeFor, engineOptions))
                Console.WriteLine($"{w.Path}: {w.Bytes / 1048576.0:F2} MiB, the graph as {w.Device} runs it (hardware-specific: use it on the same CPU model)");
        return ok ? 0 : 1;
    }

    /// <summary><c>tessera export llm</c>: a Hugging Face-style decoder checkpoint → ONNX (GenAI conventions) with parity.</summary>
    public static int RunLlm(string checkpoint, string outDir, string architecture, ExportVariant[] variants, int opset, bool externalData)
    {
        if (opset is < ExportContext.MinOpset or > ExportContext.MaxOpset)
            throw new ArgumentException($"--opset {opset}: the exporter writes opsets {ExportContext.MinOpset} to {ExportContext.MaxOpset}.");
        var r = Tessera.Export.Llm.LlmExporter.Export(checkpoint, outDir, architecture, variants, opset, externalData, Console.Error);
        bool ok = PrintParity(r.Model);
        Console.WriteLine($"checkpoint tensors: {r.Weights.Consumed.Count} consumed, {r.Weights.Ignored.Count} ignored, 0 missing, 0 unexpected; {r.GenAiConfigPath} written");
        return ok ? 0 : 1;
    }

    /// <summary><c>tessera export module</c>: a recipe class in the user's assembly → ONNX with parity.</summary>
    public static int RunModule(string assemblyPath, string recipeName, string outPath, ExportVariant[] variants, bool externalData)
    {
        var recipe = ExportRecipes.Load(assemblyPath, recipeName);
        using var module = recipe.CreateModule();
        var spec = recipe.CreateSpec() with { Variants = variants, ExternalData = externalData };
        var r = OnnxExporter.Export(module, spec, outPath, Console.Error);
        return PrintParity(r) ? 0 : 1;
    }

    /// <summary>Prints the parity table of a result and its variants; false when any failed.</summary>
    private static bool PrintParity(ExportResult r)
    {
        bool ok = true;
        foreach (var variant in r.Variants.Prepend(r))
        {
            Console.WriteLine($"{"case",-22}{"output",-28}{"max abs err",13}{"max rel err",13}{"tolerance",11}  result   [{variant.Name}]");
            foreach (var p in variant.Parity)
                Console.WriteLine($"{p.Case,-22}{p.Output,-28}{p.MaxAbsError,13:E2}{p.MaxRelError,13:E2}{p.Tolerance,11:G3}  {(p.Passed ? "ok" : "FAILED")}");
            Console.WriteLine($"{variant.ModelPath}{(variant.ExternalDataPath is null ? "" : $" + {Path.GetFileName(variant.ExternalDataPath)}")}: {variant.Bytes / 1048576.0:F2} MiB" +
                              $"{(variant == r ? "" : $" ({(double)variant.Bytes / r.Bytes:P0} of fp32)")}; report {variant.ReportPath}");
            if (!variant.Passed) Console.Error.WriteLine($"error: the {variant.Name} export does not match TorchSharp within tolerance; the ONNX file is kept for inspection but must not be shipped.");
            ok &= variant.Passed;
        }
        return ok;
    }
}
