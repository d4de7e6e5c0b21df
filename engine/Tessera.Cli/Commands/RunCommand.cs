using System.CommandLine;
using System.Diagnostics;
using Tessera.Abstractions;
using Tessera.Engine;

namespace Tessera.Cli.Commands;

/// <summary><c>tessera run</c>: compile any ONNX graph on a device, run it, print output shapes and timings.</summary>
public static class RunCommand
{
    public static Command Create()
    {
        var model = new Argument<FileInfo>("model") { Description = "Path of an .onnx file." };
        var device = new Option<string>("--device") { Description = "Device: auto, cpu:0, cuda:0, ascend:0 ... (see 'tessera devices').", DefaultValueFactory = _ => "auto" };
        var inputs = new Option<string[]>("--input") { Description = "name=random | name=file.npy | name=file.bin (raw little-endian, fixed shapes only). Repeatable; unspecified inputs are random." };
        var dims = new Option<string[]>("--dim") { Description = "Size for a named dynamic dimension, e.g. --dim batch=4 (default 1). Repeatable." };
        var iterations = new Option<int>("--iterations") { Description = "Timed runs after the first (default 10).", DefaultValueFactory = _ => 10 };
        var seed = new Option<int>("--seed") { Description = "Seed for random inputs.", DefaultValueFactory = _ => 0 };
        var save = new Option<DirectoryInfo?>("--save") { Description = "Write each output to <dir>/<name>.npy." };
        var noCache = new Option<bool>("--no-cache") { Description = "Do not read or write the optimized-graph cache." };
        var placement = new Option<bool>("--placement") { Description = "Also print where each node runs (the device, or the CPU by fallback), as the device answers CheckSupport for the model." };
        var cmd = new Command("run", "Run any ONNX graph on a device and print output shapes and timing.")
        {
            model, device, inputs, dims, iterations, seed, save, noCache, placement,
        };
        cmd.SetAction(parse => CliErrors.Run(() => Execute(
            parse, parse.GetValue(model)!, parse.GetValue(device)!, parse.GetValue(inputs) ?? [], parse.GetValue(dims) ?? [],
            parse.GetValue(iterations), parse.GetValue(seed), parse.GetValue(save), parse.GetValue(noCache), parse.GetValue(placement))));
        return cmd;
    }

    private static int Execute(ParseResult parse, FileInfo modelFile, string deviceName, string[] inputSpecs, string[] dimSpecs,
        int iterations, int seed, DirectoryInfo? save, bool noCache, bool showPlacement = false)
    {
        if (!modelFile.Exists && !Directory.Exists(modelFile.FullName)) throw new FileNotFoundException($"Model file {modelFile.FullName} does not exist.");
        InputFiles.RequireRegularFile(modelFile.FullName, "Model file", InputFiles.MaxOnnxBytes);
        if (iterations is < 0 or > MaxIterations) throw new ArgumentException($"--iterations is {iterations}; it must be from 0 to {MaxIterations}.");
        if (save is not null && File.Exists(save.FullName))
            throw new ArgumentException($"--save {save.FullName} is a file; give a folder to write <output>.npy files into.");
        var dimValues = dimSpecs.Select(ParsePair).ToDictionary(p => p.Key, p => long.TryParse(p.Value, out var v) && v > 0
            ? v : throw new ArgumentException($"--dim {p.Key}={p.Value}: the size must be a positive whole number."));
        var given = inputSpecs.Select(ParsePair).ToDictionary(p => p.Key, p => p.Value);

        var options = GlobalOptions.Build(parse);
        using var engine = new TesseraEngine(options);
        var compileOptions = new CompileOptions { Fallback = options.Fallback, UseCompiledModelCache = !noCache };
        using var compiled = engine.Compile(ModelSource.FromFile(modelFile.FullName), deviceName, compileOptions);
        var m = compiled.Model;
        Console.WriteLine($"model    {modelFile.FullName}");
        Console.WriteLine($"device   {m.Device}{(compiled.Placement.FellBack ? $"  (requested {compiled.Placement.Requested})" : "")}");
        foreach (var note in compiled.FallbackNotes) Console.WriteLine($"fallback {note}");
        Console.WriteLine($"compile  {m.Report.CompileTime.TotalMilliseconds:F1} ms{(m.Report.FromCache ? " (optimized graph from cache)" : "")}");
        foreach (var note in m.Report.Notes) Console.WriteLine($"note     {note}");
        foreach (var node in m.Report.FallbackNodes) Console.WriteLine($"on cpu   {node.OpType} '{node.NodeName}'{(node.Reason is null ? "" : $" ({node.Reason})")}");
        if (showPlacement)
        {
            var device = engine.Devices.Get(m.Device.ToString()).Device;
            var report = device.CheckSupport(ModelSource.FromFile(modelFile.FullName), compileOptions);
            Console.WriteLine($"placement {report.Message}");
            foreach (var group in report.Nodes.GroupBy(n => (n.OnDevice, n.OpType)).OrderBy(g => g.Key.OnDevice).ThenBy(g => g.Key.OpType, StringComparer.Ordinal))
                Console.WriteLine($"  {(group.Key.OnDevice ? m.Device.ToString() : "cpu (fallback)"),-16} {group.Key.OpType,-28} x{group.Count()}");
        }

        foreach (var name in given.Keys)
            if (m.Inputs.All(i => i.Name != name))
                throw new ArgumentException($"--input {name}: the model has no input named '{name}'. Inputs: {string.Join(", ", m.Inputs.Select(i => i.Name))}.");
        var symbols = m.Inputs.SelectMany(i => i.Shape).Select(d => d.Symbol).OfType<string>().ToHashSet(StringComparer.Ordinal);
        foreach (var name in dimValues.Keys)
            if (!symbols.Contains(name))
                throw new ArgumentException($"--dim {name}: the model's inputs have no dynamic dimension named '{name}'. " +
                    (symbols.Count == 0 ? "They have fixed shapes only." : $"Dynamic dimensions: {string.Join(", ", symbols.Order(StringComparer.Ordinal))}."));
        long totalBytes = 0;
        foreach (var spec in m.Inputs)
        {
            var shape = spec.Shape.Select(d => d.Size ?? dimValues.GetValueOrDefault(d.Symbol ?? "", 1)).ToArray();
            long count;
            try { count = HostTensor.ElementCountOf(shape); totalBytes = checked(totalBytes + checked(count * spec.ElementType.SizeOf())); }
            catch (OverflowException) { throw new ArgumentException($"Input '{spec.Name}' with shape [{string.Join(", ", shape)}] is too large to count; use smaller --dim values."); }
            if (count > HostTensor.MaxElements)
                throw new ArgumentException($"Input '{spec.Name}' with shape [{string.Join(", ", shape)}] holds {count} elements; at most {HostTensor.MaxElements} fit in one tensor. Use smaller --dim values.");
        }
        long available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        if (totalBytes > available / 2)
            throw new ArgumentException($"The inputs need {InputFiles.Describe(totalBytes)} but this process has {InputFiles.Describe(available)} of memory; use smaller --dim values.");
        var rng = new Random(seed);
        var feeds = new Dictionary<string, ITensorValue>();
        foreach (var spec in m.Inputs)
        {
            var source = given.GetValueOrDefault(spec.Name, "random");
            var shape = spec.Shape.Select(d => d.Size ?? dimValues.GetValueOrDefault(d.Symbol ?? "", 1)).ToArray();
            feeds[spec.Name] = source == "random" ? TensorFiles.Random(spec.ElementType, shape, rng) : TensorFiles.Read(source, spec, shape);
            Console.WriteLine($"input    {spec.Name}: {spec.ElementType.OnnxName()}[{string.Join(", ", feeds[spec.Name].Shape)}] from {source}");
        }

        var first = Stopwatch.StartNew();
        using var outputs = m.Run(feeds);
        first.Stop();
        foreach (var name in outputs.Names)
        {
            var t = outputs[name];
            Console.WriteLine($"output   {name}: {t.ElementType.OnnxName()}[{string.Join(", ", t.Shape)}]");
            if (save is not null)
            {
                Directory.CreateDirectory(save.FullName);
                TensorFiles.WriteNpy(Path.Combine(save.FullName, name + ".npy"), t.ToHost());
            }
        }
        var times = new double[iterations];
        for (int i = 0; i < iterations; i++)
        {
            var w = Stopwatch.StartNew();
            using var _ = m.Run(feeds);
            times[i] = w.Elapsed.TotalMilliseconds;
        }
        Array.Sort(times);
        Console.WriteLine(iterations > 0
            ? $"time     first {first.Elapsed.TotalMilliseconds:F3} ms, median {times[iterations / 2]:F3} ms, min {times[0]:F3} ms over {iterations} runs"
            : $"time     first {first.Elapsed.TotalMilliseconds:F3} ms");
        return 0;
    }

    private const int MaxIterations = 100_000;

    private static KeyValuePair<string, string> ParsePair(string text)
    {
        var i = text.IndexOf('=');
        return i > 0 ? KeyValuePair.Create(text[..i], text[(i + 1)..]) : throw new ArgumentException($"'{text}' should be name=value.");
    }
}
