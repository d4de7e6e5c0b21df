using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML.OnnxRuntime;
using Tessera.Abstractions;
using Tessera.Conformance;
using Tessera.Engine;
using Tessera.Engine.Plugins;
using Tessera.Pipeline;

namespace Tessera.Cli.Commands;

/// <summary><c>tessera plugin verify</c>: loads one plugin folder and runs the conformance suite on its devices.</summary>
public static class PluginCommand
{
    public static Command Create()
    {
        var folder = new Argument<DirectoryInfo?>("folder") { Description = "Folder holding the plugin (its dll and dependencies), as it would be deployed.", Arity = ArgumentArity.ZeroOrOne };
        var listOps = new Option<bool>("--list-ops") { Description = "Print the ONNX ops and opsets the conformance graphs and the model package use (and its --int8 variant's contrib ops), then stop." };
        var dumpGraphs = new Option<DirectoryInfo?>("--dump-graphs") { Description = "Write every conformance graph (op-level and model) to this folder as .onnx, with index.json (case, description, tolerance), then stop." };
        var device = new Option<string?>("--device") { Description = "Verify only this device (kind:index). Default: every available device of the plugin." };
        var model = new Option<DirectoryInfo?>("--model") { Description = "Model package whose graphs are also verified. Default: the shipped default model." };
        var noModels = new Option<bool>("--no-models") { Description = "Only the op-level and contract cases (fast)." };
        var scale = new Option<double>("--tolerance-scale") { Description = "Multiply every numeric tolerance (e.g. 10 for a device that computes in fp16).", DefaultValueFactory = _ => 1.0 };
        var json = new Option<bool>("--json") { Description = "Print the report as JSON." };
        var verify = new Command("verify", "Load a plugin, check its contract, and run the conformance suite (op-level graphs and the shipped model's graphs) on its devices against ONNX Runtime's CPU EP, with a named tolerance per case. Exit code: 0 all passed, 1 a case failed or the plugin did not load, 2 no available device to verify.")
        {
            folder, device, model, noModels, scale, json, listOps, dumpGraphs,
        };
        verify.SetAction(parse => CliErrors.Run(() =>
        {
            if (parse.GetValue(listOps)) return ListOps(Cases(parse.GetValue(model), parse.GetValue(noModels), Console.Out), parse.GetValue(json));
            if (parse.GetValue(dumpGraphs) is { } dump) return DumpGraphs(Cases(parse.GetValue(model), parse.GetValue(noModels), Console.Out), dump.FullName);
            var dir = parse.GetValue(folder) ?? throw new ArgumentException("Give the plugin folder to verify (or --list-ops / --dump-graphs).");
            return Verify(dir, parse.GetValue(device), parse.GetValue(model), parse.GetValue(noModels), parse.GetValue(scale), parse.GetValue(json), parse);
        }));
        return new Command("plugin", "Work with hardware plugins (see docs/writing-a-plugin.md).") { verify, PluginInstallCommand.Create() };
    }

    /// <summary>The op-level cases and, unless <paramref name="noModels"/>, the model package's graphs.</summary>
    private static List<ConformanceCase> Cases(DirectoryInfo? modelDir, bool noModels, TextWriter log)
    {
        var cases = OpGraphs.All().ToList();
        if (noModels) return cases;
        var dir = modelDir?.FullName ?? ModelPackage.DefaultDirectory();
        if (Directory.Exists(dir)) cases.AddRange(ConformanceRunner.ModelCases(dir));
        else log.WriteLine($"  (no model package at {dir}; model cases skipped. Pass --model <folder>.)");
        return cases;
    }

    /// <summary>
    /// The ops a runtime must run: per (domain, op) the opset and the cases that use it; the model graphs' int8
    /// variants (tessera export --int8) add com.microsoft.MatMulNBits.
    /// </summary>
    private static int ListOps(List<ConformanceCase> cases, bool json)
    {
        var uses = new SortedDictionary<string, SortedSet<string>>(StringComparer.Ordinal);
        var opsets = new SortedDictionary<string, long>(StringComparer.Ordinal);
        void Scan(string caseName, Tessera.Onnx.Proto.ModelProto m)
        {
            foreach (var o in m.OpsetImport) opsets[o.Domain.Length == 0 ? "ai.onnx" : o.Domain] = Math.Max(opsets.GetValueOrDefault(o.Domain.Length == 0 ? "ai.onnx" : o.Domain), o.Version);
            foreach (var n in m.Graph.Node)
            {
                var key = $"{(n.Domain.Length == 0 ? "ai.onnx" : n.Domain)}.{n.OpType}";
                if (!uses.TryGetValue(key, out var set)) uses[key] = set = new SortedSet<string>(StringComparer.Ordinal);
                set.Add(caseName);
            }
        }
        foreach (var c in cases)
        {
            var m = Tessera.Onnx.Proto.ModelProto.Parser.ParseFrom(c.Graph());
            Scan(c.Name, m);
            if (c.Name.StartsWith("model.", StringComparison.Ordinal)) Scan(c.Name + " (--int8)", Tessera.Onnx.OnnxVariants.ToInt8Weights(m));
        }
        if (json)
        {
            Console.WriteLine(new JsonObject
            {
                ["opsets"] = new JsonObject(opsets.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
                ["ops"] = new JsonArray(uses.Select(kv => (JsonNode)new JsonObject { ["op"] = kv.Key, ["usedBy"] = new JsonArray(kv.Value.Select(v => (JsonNode)v).ToArray()) }).ToArray()),
            }.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            return 0;
        }
        Console.WriteLine($"opsets: {string.Join(", ", opsets.Select(kv => $"{kv.Key} {kv.Value}"))}");
        Console.WriteLine($"{"op",-36}used by");
        foreach (var (op, by) in uses) Console.WriteLine($"{op,-36}{string.Join(", ", by)}");
        return 0;
    }

    private static int DumpGraphs(List<ConformanceCase> cases, string dir)
    {
        Directory.CreateDirectory(dir);
        var index = new JsonArray();
        foreach (var c in cases)
        {
            var file = $"{c.Name}.onnx";
            File.WriteAllBytes(Path.Combine(dir, file), c.Graph());
            index.Add(new JsonObject { ["case"] = c.Name, ["file"] = file, ["description"] = c.Description, ["tolerance"] = c.ToleranceText });
        }
        File.WriteAllText(Path.Combine(dir, "index.json"), index.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        Console.WriteLine($"wrote {cases.Count} conformance graphs and index.json to {dir}; feed each its inputs and compare with ONNX Runtime's CPU EP within the listed tolerance (or run tessera plugin verify)");
        return 0;
    }

    private static int Verify(DirectoryInfo folder, string? deviceFilter, DirectoryInfo? modelDir, bool noModels, double scale, bool json, ParseResult parse)
    {
        if (!folder.Exists) throw new DirectoryNotFoundException($"Plugin folder {folder.FullName} does not exist. Pass the folder a plugin is deployed to (e.g. bin/Release/net10.0 of the plugin project).");
        if (scale <= 0) throw new ArgumentException("--tolerance-scale must be positive.");
        var options = GlobalOptions.Build(parse);
        options.UseDefaultPluginDirectory = false;
        options.UseEnvironmentPluginPath = false;
        options.PluginDirectories.Clear();
        options.PluginDirectories.Add(folder.FullName);
        // Under 'allow' the host runs what a device refuses on the CPU: load the host's CPU plugin beside the one verified.
        var cpuDir = Path.Combine(EngineOptions.DefaultPluginDirectory, "cpu");
        bool withCpu = options.Fallback == FallbackPolicy.Allow && Directory.Exists(cpuDir)
            && Path.TrimEndingDirectorySeparator(Path.GetFullPath(cpuDir)) != Path.TrimEndingDirectorySeparator(folder.FullName);
        if (withCpu) options.PluginDirectories.Add(cpuDir);
        bool Verified(PluginStatus p) => !withCpu || !p.Location.StartsWith(cpuDir + Path.DirectorySeparatorChar, StringComparison.Ordinal);
        using var engine = new TesseraEngine(options);
        var report = new JsonObject
        {
            ["folder"] = folder.FullName,
            ["hostContract"] = TesseraContract.Version.ToString(),
            ["reference"] = $"ONNX Runtime {OrtEnv.Instance().GetVersionString()} CPU EP",
        };
        var log = json ? TextWriter.Null : Console.Out;
        report["fallback"] = options.Fallback.ToString().ToLowerInvariant();
        log.WriteLine($"Verifying plugins in {folder.FullName} (host contract {TesseraContract.Version}; fallback {options.Fallback.ToString().ToLowerInvariant()}); reference: ONNX Runtime {OrtEnv.Instance().GetVersionString()} CPU EP");
        report["plugins"] = new JsonArray(engine.Plugins.Select(p => (JsonNode)new JsonObject
        {
            ["name"] = p.Name, ["state"] = p.State.ToString().ToLowerInvariant(), ["reason"] = p.Reason, ["contract"] = p.ContractVersion?.ToString(), ["version"] = p.Version?.ToString(), ["location"] = p.Location,
        }).ToArray());
        foreach (var p in engine.Plugins)
            log.WriteLine(!Verified(p)
                ? $"  plugin {p.Name} ({p.Location}): the CPU that runs what the device refuses (fallback allow); not verified"
                : p.State == PluginState.Loaded
                ? $"  plugin {p.Name} {p.Version} by {p.Vendor}: contract {p.ContractVersion} ok  ({p.Location})"
                : $"  plugin {p.Name ?? Path.GetFileName(Path.GetDirectoryName(p.Location))} ({p.Location}): FAILED to load: {p.Reason}");
        if (!engine.Plugins.Any(Verified) || engine.Plugins.Where(Verified).Any(p => p.State != PluginState.Loaded))
        {
            if (!engine.Plugins.Any(Verified)) log.WriteLine($"  no plugin found in {folder.FullName}{(engine.PluginNotes.Count > 0 ? ": " + string.Join("; ", engine.PluginNotes) : "")}");
            report["result"] = "fail";
            if (json) Console.WriteLine(report.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            log.WriteLine("FAIL: the plugin did not load.");
            return 1;
        }

        DeviceId? wanted = deviceFilter is null ? null : DeviceId.Parse(deviceFilter);
        var verifiedPlugins = engine.Plugins.Where(Verified).Select(p => p.Name).ToHashSet();
        var devices = engine.Devices.Devices.Where(d => (wanted is null || d.Info.Id == wanted) && verifiedPlugins.Contains(d.PluginName)).ToList();
        if (deviceFilter is not null && devices.Count == 0)
            throw new ArgumentException($"The plugin offers no device {deviceFilter}; it offers {string.Join(", ", engine.Devices.Devices.Where(d => verifiedPlugins.Contains(d.PluginName)).Select(d => d.Info.Id))}.");
        var cases = Cases(modelDir, noModels, log);
        var runner = new ConformanceRunner(engine, scale, options.Fallback);
        var results = new List<CaseResult>();
        foreach (var d in devices)
        {
            if (!d.Info.IsAvailable)
            {
                results.Add(new CaseResult(d.Info.Id.ToString(), "device", CaseStatus.Skip, "", null, $"unavailable: {d.Info.UnavailableReason}", TimeSpan.Zero));
                log.WriteLine($"  {d.Info.Id,-10} SKIP  unavailable: {d.Info.UnavailableReason}");
                foreach (var r in runner.UnavailableChecks(d))
                {
                    results.Add(r);
                    log.WriteLine($"    {r.Case,-32} {Status(r.Status),-5} {r.Detail}");
                }
                continue;
            }
            log.WriteLine($"  {d.Info.Id} ({d.Info.Name}):");
            foreach (var r in runner.ContractChecks(d).Concat(cases.Select(c => runner.Run(d, c))))
            {
                results.Add(r);
                log.WriteLine($"    {r.Case,-32} {Status(r.Status),-5} {(r.MaxAbsError is { } e ? $"max err {e:E2}" : ""),-18} {r.Tolerance,-26} {r.Elapsed.TotalMilliseconds,7:F0} ms  {(r.Status == CaseStatus.Pass ? "" : r.Detail)}");
            }
        }
        int failed = results.Count(r => r.Status == CaseStatus.Fail), passed = results.Count(r => r.Status == CaseStatus.Pass);
        var verdict = failed > 0 ? "fail" : !devices.Any(d => d.Info.IsAvailable) ? "no-device" : "pass";
        report["result"] = verdict;
        report["cases"] = new JsonArray(results.Select(r => (JsonNode)new JsonObject
        {
            ["device"] = r.Device, ["case"] = r.Case, ["status"] = r.Status.ToString().ToLowerInvariant(), ["tolerance"] = r.Tolerance,
            ["maxAbsError"] = r.MaxAbsError is { } m && double.IsFinite(m) ? m : null, ["detail"] = r.Detail, ["ms"] = Math.Round(r.Elapsed.TotalMilliseconds, 1),
        }).ToArray());
        if (json) Console.WriteLine(report.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        log.WriteLine(verdict switch
        {
            "fail" => $"FAIL: {failed} case(s) failed ({string.Join(", ", results.Where(r => r.Status == CaseStatus.Fail).Select(r => $"{r.Device} {r.Case}"))}); {passed} passed.",
            "no-device" => "NOT VERIFIED: the plugin has no available device here (reasons above).",
            _ => $"PASS: {passed} case(s) passed on {devices.Count(d => d.Info.IsAvailable)} device(s).",
        });
        return verdict switch { "fail" => 1, "no-device" => 2, _ => 0 };
    }

    private static string Status(CaseStatus s) => s switch { CaseStatus.Pass => "pass", CaseStatus.Fail => "FAIL", _ => "skip" };
}
