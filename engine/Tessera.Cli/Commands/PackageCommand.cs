using System.CommandLine;

namespace Tessera.Cli.Commands;

/// <summary><c>tessera package</c>: a model package (manifest + ONNX per stage + tokenizer + curves) from training runs.</summary>
public static class PackageCommand
{
    public static Command Create()
    {
        var vq = new Option<DirectoryInfo>("--vq-run") { Description = "VQ training run folder.", Required = true };
        var ar = new Option<DirectoryInfo>("--ar-run") { Description = "AR training run folder (also holds tokenizer.json).", Required = true };
        var decoder = new Option<DirectoryInfo>("--decoder-run") { Description = "Decoder training run folder.", Required = true };
        var output = new Option<DirectoryInfo>("--out") { Description = "Package folder to write (e.g. models/default).", Required = true };
        var name = new Option<string>("--name") { Description = "Package name.", DefaultValueFactory = _ => "tessera-tiny" };
        var cmd = new Command("package", "Export all stages of trained runs (with parity) into a model package that 'tessera generate --model' runs.")
        {
            vq, ar, decoder, output, name,
        };
        cmd.SetAction(parse => CliErrors.Run(() => Training.PackageBuilder.Run(
            parse.GetValue(vq)!.FullName, parse.GetValue(ar)!.FullName, parse.GetValue(decoder)!.FullName, parse.GetValue(output)!.FullName, parse.GetValue(name)!)));
        return cmd;
    }
}
