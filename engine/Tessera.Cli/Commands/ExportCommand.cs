using Tessera.Models.Export;
using System.CommandLine;
using Tessera.Export;

namespace Tessera.Cli.Commands;

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
        cmd.SetAction(parse => CliErrors.Run(() => Training.ExportRunner.Run(parse.GetValue(stage)!, parse.GetValue(checkpoint)!, parse.GetValue(output)!.FullName, parse.GetValue(external),
            [.. parse.GetValue(fp16) ? new[] { ExportVariant.Fp16 } : [], .. parse.GetValue(int8) ? new[] { ExportVariant.Int8 } : []],
            parse.GetValue(opset), parse.GetValue(optimizeFor) ?? [], GlobalOptions.Build(parse))));
        return cmd;
    }
}
