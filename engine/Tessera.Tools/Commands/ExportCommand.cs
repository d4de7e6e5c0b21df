using Tessera.Models.Export;
using System.CommandLine;
using Tessera.Export;
using Tessera.Cli;
using Tessera.Cli.Bench;

namespace Tessera.Tools.Commands;

/// <summary><c>tessera export</c>: a trained stage → ONNX, validated against TorchSharp (libtorch loads only here and in train).</summary>
public static class ExportCommand
{
    public static Command Create()
    {
        var checkpoint = new Option<string>("--checkpoint") { Description = "A checkpoint file (.tsr), or a training run folder (its newest valid checkpoint).", Required = true };
        var stage = new Option<string>("--stage") { Description = "ar, decoder or vq (the VQ encoder).", Required = true };
        stage.AcceptOnlyFromAmong("ar", "decoder", "vq");
        var output = new Option<DirectoryInfo>("--out") { Description = "Folder for <stage>.onnx and <stage>.parity.json.", Required = true };
        var external = new Option<bool>("--external-data") { Description = "Store weights in <stage>.onnx.data beside the graph (automatic above 2 GB)." };
        var fp16 = new Option<bool>("--fp16") { Description = "Also write <stage>.fp16.onnx: weights stored as float16 (half the size), computed in float32, validated with its own tolerance." };
        var int8 = new Option<bool>("--int8") { Description = "Also write <stage>.int8.onnx: MatMul weights as 8-bit blocks (com.microsoft.MatMulNBits), validated with its own tolerance." };
        var opset = new Option<int>("--opset") { Description = $"Default-domain ONNX opset to write ({ExportContext.MinOpset}-{ExportContext.MaxOpset}).", DefaultValueFactory = _ => ExportContext.DefaultOpset };
        var optimizeFor = new Option<string[]>("--optimize-for") { Description = "Also write <stage>.<device>.onnx: the graph as that device optimizes it (e.g. cpu:0), so it loads without optimizing again on the same hardware. Repeatable." };
        var cmd = new Command("export", "Export a trained stage to ONNX with a parity report (TorchSharp vs ONNX Runtime on the same inputs; fp32 tolerance 1e-4).")
        {
            checkpoint, stage, output, external, fp16, int8, opset, optimizeFor,
        };
        cmd.Subcommands.Add(Llm());
        cmd.Subcommands.Add(ModuleRecipe());
        cmd.SetAction(parse => CliErrors.Run(() => Training.ExportRunner.Run(parse.GetValue(stage)!, parse.GetValue(checkpoint)!, parse.GetValue(output)!.FullName, parse.GetValue(external),
            Variants(parse.GetValue(fp16), parse.GetValue(int8), false),
            parse.GetValue(opset), parse.GetValue(optimizeFor) ?? [], GlobalOptions.Build(parse))));
        return cmd;
    }

    private static Command ModuleRecipe()
    {
        var assembly = new Option<string>("--assembly") { Description = "Your .dll (built against Tessera.Export) that holds the recipe class.", Required = true };
        var recipe = new Option<string>("--recipe") { Description = "Full name of a class implementing Tessera.Export.IExportRecipe (builds the module, names inputs, outputs, dynamic axes and validation samples).", Required = true };
        var output = new Option<FileInfo>("--out") { Description = "The .onnx file to write; <name>.parity.json goes beside it.", Required = true };
        var fp16 = new Option<bool>("--fp16") { Description = "Also write <name>.fp16.onnx (fp16 weights), validated with its own tolerance." };
        var int8 = new Option<bool>("--int8") { Description = "Also write <name>.int8.onnx (MatMul weights as 8-bit blocks)." };
        var int4 = new Option<bool>("--int4") { Description = "Also write <name>.int4.onnx (MatMul weights as 4-bit blocks)." };
        var external = new Option<bool>("--external-data") { Description = "Store weights in <name>.onnx.data beside the graph." };
        var cmd = new Command("module", "Export any TorchSharp module through a recipe class in your assembly: every module type needs a mapping (stock layers have one; register your own or implement IOnnxExportable; docs/exporting.md). Validated against TorchSharp on the recipe's samples.")
        {
            assembly, recipe, output, fp16, int8, int4, external,
        };
        cmd.SetAction(parse => CliErrors.Run(() => Training.ExportRunner.RunModule(parse.GetValue(assembly)!, parse.GetValue(recipe)!, parse.GetValue(output)!.FullName,
            Variants(parse.GetValue(fp16), parse.GetValue(int8), parse.GetValue(int4)), parse.GetValue(external))));
        return cmd;
    }

    private static ExportVariant[] Variants(bool fp16, bool int8, bool int4) =>
        [.. fp16 ? new[] { ExportVariant.Fp16 } : [], .. int8 ? new[] { ExportVariant.Int8 } : [], .. int4 ? new[] { ExportVariant.Int4 } : []];

    private static Command Llm()
    {
        var checkpoint = new Option<string>("--checkpoint") { Description = "A Hugging Face-style folder: config.json and model.safetensors (or shards with model.safetensors.index.json) or pytorch_model.bin.", Required = true };
        var output = new Option<DirectoryInfo>("--out") { Description = "Folder for model.onnx, model.parity.json, genai_config.json and the checkpoint's tokenizer files.", Required = true };
        var arch = new Option<string>("--arch") { Description = "auto (from config.json's model_type), gpt2 or llama.", DefaultValueFactory = _ => "auto" };
        arch.AcceptOnlyFromAmong("auto", "gpt2", "llama");
        var fp16 = new Option<bool>("--fp16") { Description = "Also write model.fp16.onnx (fp16 weights, float32 compute), validated with its own tolerance." };
        var int8 = new Option<bool>("--int8") { Description = "Also write model.int8.onnx (MatMul weights as 8-bit blocks, com.microsoft.MatMulNBits)." };
        var int4 = new Option<bool>("--int4") { Description = "Also write model.int4.onnx (MatMul weights as 4-bit blocks, com.microsoft.MatMulNBits)." };
        var opset = new Option<int>("--opset") { Description = $"Default-domain ONNX opset to write ({ExportContext.MinOpset}-{ExportContext.MaxOpset}).", DefaultValueFactory = _ => ExportContext.DefaultOpset };
        var external = new Option<bool>("--external-data") { Description = "Store weights in model.onnx.data beside the graph (automatic above 1 GB of weights)." };
        var cmd = new Command("llm", "Export a GPT-2- or Llama-style decoder checkpoint to ONNX in ONNX Runtime GenAI's conventions (input_ids, attention_mask, position_ids, past_key_values.*), with a parity report against TorchSharp and a genai_config.json.")
        {
            checkpoint, output, arch, fp16, int8, int4, opset, external,
        };
        cmd.SetAction(parse => CliErrors.Run(() => Training.ExportRunner.RunLlm(parse.GetValue(checkpoint)!, parse.GetValue(output)!.FullName, parse.GetValue(arch)!,
            Variants(parse.GetValue(fp16), parse.GetValue(int8), parse.GetValue(int4)), parse.GetValue(opset), parse.GetValue(external))));
        return cmd;
    }
}
