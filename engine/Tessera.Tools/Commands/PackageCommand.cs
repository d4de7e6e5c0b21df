using System.CommandLine;
using Tessera.Cli;
using Tessera.Cli.Bench;

namespace Tessera.Tools.Commands;

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
        var cfg = new Option<double?>("--cfg") { Description = "Default guidance scale written to the manifest (default 3)." };
        var steps = new Option<int?>("--steps") { Description = "Default decoder steps written to the manifest (default 20)." };
        var sampler = new Option<string?>("--sampler") { Description = "Default decoder sampler written to the manifest: euler, heun or dpm2m (default euler)." };
        var cmd = new Command("package", "Export all stages of trained runs (with parity) into a model package that 'tessera generate --model' runs.")
        {
            vq, ar, decoder, output, name, cfg, steps, sampler,
        };
        cmd.SetAction(parse => CliErrors.Run(() =>
        {
            var sampling = new Tessera.Pipeline.SamplingDefaults();
            if (parse.GetValue(cfg) is { } c) sampling = c is >= 0 and <= 30 ? sampling with { Cfg = c } : throw new ArgumentException($"--cfg {c}: use 0 to 30.");
            if (parse.GetValue(steps) is { } st) sampling = st is >= 1 and <= 200 ? sampling with { Steps = st } : throw new ArgumentException($"--steps {st}: use 1 to 200.");
            if (parse.GetValue(sampler) is { } sm) sampling = Tessera.Pipeline.Sampling.FlowSamplers.IsKnown(sm) ? sampling with { Sampler = sm }
                : throw new ArgumentException($"--sampler {sm}: use one of {string.Join(", ", Tessera.Pipeline.Sampling.FlowSamplers.Names)}.");
            return Training.PackageBuilder.Run(parse.GetValue(vq)!.FullName, parse.GetValue(ar)!.FullName, parse.GetValue(decoder)!.FullName,
                parse.GetValue(output)!.FullName, parse.GetValue(name)!, sampling);
        }));
        return cmd;
    }
}
