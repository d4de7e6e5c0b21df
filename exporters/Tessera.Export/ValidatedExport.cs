using System.Text.Json;
using System.Text.Json.Nodes;
using Tessera.Onnx;
using Tessera.Onnx.Proto;

namespace Tessera.Export;

/// <summary>
/// Writes an exported graph, loads the file back in ONNX Runtime (external data included, so what was written is
/// what is checked), runs the caller's parity check against the TorchSharp reference, writes the report
/// <c>&lt;stem&gt;.parity.json</c> beside it, then does the same for each variant with its own tolerance.
/// </summary>
public static class ValidatedExport
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <param name="modelPath">Where the fp32 model goes (<c>dir/name.onnx</c>); variants go to <c>dir/name.&lt;suffix&gt;.onnx</c>.</param>
    /// <param name="check">Runs the reference and ONNX Runtime on the same inputs and compares each output.</param>
    /// <param name="annotate">Adds fields of the caller's to each report (checkpoint, step, configuration).</param>
    public static ExportResult Write(ModelProto proto, string modelPath, Func<Parity, IReadOnlyList<OutputParity>> check,
        IReadOnlyList<ExportVariant> variants, bool externalData, TextWriter log, Action<JsonObject>? annotate = null)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(modelPath))!;
        Directory.CreateDirectory(dir);
        var stem = Path.GetFileNameWithoutExtension(modelPath);
        var result = WriteOne(proto, modelPath, stem, check, null, externalData, log, annotate, fp32Bytes: null);
        var written = new List<ExportResult>();
        foreach (var v in variants)
            written.Add(WriteOne(v.Transform(proto), Path.Combine(dir, $"{stem}.{v.Suffix}.onnx"), $"{stem} {v.Suffix}", check, v, externalData, log, annotate, result.Bytes));
        return result with { Variants = written };
    }

    private static ExportResult WriteOne(ModelProto proto, string path, string name, Func<Parity, IReadOnlyList<OutputParity>> check,
        ExportVariant? variant, bool externalData, TextWriter log, Action<JsonObject>? annotate, long? fp32Bytes)
    {
        var dataPath = OnnxModelFile.Save(proto, path, externalData ? new ExternalDataOptions() : null);
        log.WriteLine($"wrote {path}; validating{(variant is null ? "" : $" the {variant.Suffix} variant")} against TorchSharp");
        IReadOnlyList<OutputParity> rows;
        using (var parity = new Parity(path)) rows = check(parity);
        if (variant is not null) rows = rows.Select(r => r with { Tolerance = Math.Max(r.Tolerance, variant.Tolerance) }).ToList();
        long bytes = new FileInfo(path).Length + (dataPath is null ? 0 : new FileInfo(dataPath).Length);
        var report = Parity.ToJson(rows);
        annotate?.Invoke(report);
        report["modelBytes"] = bytes;
        if (variant is not null)
        {
            report["variant"] = variant.Description;
            report["sizeRatioToFp32"] = Math.Round((double)bytes / fp32Bytes!.Value, 3);
        }
        var reportPath = Path.ChangeExtension(path, ".parity.json");
        File.WriteAllText(reportPath, report.ToJsonString(Indented));
        return new ExportResult(name, path, dataPath, bytes, rows, reportPath);
    }
}
