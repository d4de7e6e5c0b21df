using Tessera.Abstractions;

namespace Tessera.Pipeline;

/// <summary>
/// The ranges and relations a manifest's shapes must satisfy before anything is allocated from them: a manifest is
/// input like any other, and "imageSize": 100000 must be a one-line error, not an out-of-memory crash.
/// </summary>
public static class ManifestRules
{
    /// <summary>Largest image side a package may declare (pixels); the decoder allocates 3·side² floats per image and step.</summary>
    public const int MaxImageSize = 2048;
    /// <summary>Largest token grid (per side) of the AR and the decoder.</summary>
    public const int MaxGrid = Tessera.Data.Prompting.ArVocabulary.MaxGridSize - 1;

    /// <summary>Throws <see cref="ModelLoadException"/> naming the manifest, the key, its value and the allowed range.</summary>
    public static void Check(PackageManifest m, string manifestPath)
    {
        void Fail(string key, string problem) =>
            throw new ModelLoadException(manifestPath, $"has '{key}' {problem}. Fix the manifest or re-run tessera package.");
        void Range(string key, long value, long min, long max)
        {
            if (value < min || value > max) Fail(key, $"= {value}; it must be from {min} to {max}");
        }
        void Finite(string key, double value, double min, double max)
        {
            if (!double.IsFinite(value) || value < min || value > max) Fail(key, $"= {value}; it must be from {min} to {max}");
        }

        if (string.IsNullOrWhiteSpace(m.Name)) Fail("name", "empty");
        if (m.Files is null) Fail("files", "missing or null");
        if (m.Ar is null) Fail("ar", "missing or null");
        if (m.Decoder is null) Fail("decoder", "missing or null");
        if (m.Sampling is null) Fail("sampling", "null; leave it out to use the defaults, or give an object");
        foreach (var key in new[] { "ar", "decoder", "tokenizer" })
            if (!m.Files!.ContainsKey(key)) Fail($"files.{key}", "missing; a package needs ar, decoder and tokenizer files");
        foreach (var (key, value) in m.Files!)
        {
            if (!ModelPackage.FileKeys.Contains(key)) Fail($"files.{key}", $"which is not a known file; known: {string.Join(", ", ModelPackage.FileKeys)}");
            if (value is null) Fail($"files.{key}", "null; give a file name inside the package");
        }

        var ar = m.Ar!;
        Range("ar.layers", ar.Layers, 1, 1024);
        Range("ar.kvHeads", ar.KvHeads, 1, 1024);
        Range("ar.headDim", ar.HeadDim, 1, 4096);
        Range("ar.codebookSize", ar.CodebookSize, 2, 1 << 20);
        Range("ar.targetGrid", ar.TargetGrid, 1, MaxGrid);
        Range("ar.previewGrid", ar.PreviewGrid, 1, ar.TargetGrid);
        Range("ar.rotaryAxes", ar.RotaryAxes, 1, 3);
        if (ar.TargetGrid % ar.PreviewGrid != 0)
            Fail("ar.previewGrid", $"= {ar.PreviewGrid}; it must divide ar.targetGrid ({ar.TargetGrid})");

        var d = m.Decoder!;
        Range("decoder.imageSize", d.ImageSize, 8, MaxImageSize);
        Range("decoder.tokenGrid", d.TokenGrid, 1, d.ImageSize);
        Range("decoder.maxGlyphs", d.MaxGlyphs, 0, 4096);
        Range("decoder.codebookSize", d.CodebookSize, 2, 1 << 20);
        if (d.ImageSize % d.TokenGrid != 0)
            Fail("decoder.imageSize", $"= {d.ImageSize}; it must be a multiple of decoder.tokenGrid ({d.TokenGrid}), the decoder's patch grid");
        if (d.TokenGrid % ar.TargetGrid != 0)
            Fail("decoder.tokenGrid", $"= {d.TokenGrid}; it must be a multiple of ar.targetGrid ({ar.TargetGrid}), since the target grid is upsampled onto it");
        if (d.CodebookSize != ar.CodebookSize)
            Fail("decoder.codebookSize", $"= {d.CodebookSize} but ar.codebookSize is {ar.CodebookSize}; the decoder reads the AR's tokens");

        var s = m.Sampling!;
        Range("sampling.steps", s.Steps, 1, GenerationLimits.MaxSteps);
        Finite("sampling.cfg", s.Cfg, 0, GenerationLimits.MaxCfg);
        Finite("sampling.shift", s.Shift, 0.01, 100);
        if (!Sampling.FlowSamplers.IsKnown(s.Sampler)) Fail("sampling.sampler", $"= '{s.Sampler}'; it must be one of {string.Join(", ", Sampling.FlowSamplers.Names)}");
        Finite("sampling.temperature", s.Temperature, 0, GenerationLimits.MaxTemperature);
        Range("sampling.topK", s.TopK, 0, 1 << 20); // above the codebook size means no top-k cut
        if (!double.IsFinite(s.TopP) || s.TopP <= 0 || s.TopP > 1) Fail("sampling.topP", $"= {s.TopP}; it must be above 0 and at most 1");
    }
}
