using Tessera.TinyPackages;

// Writes tiny random-weight model packages for the inference-side tests, which then need no TorchSharp:
//   Tessera.TinyPackages <folder> <variant>...     variant = seed ("3") or seed with a glyph image ("4-glyph")
// Each variant goes to <folder>/<variant>/ (tests/Tessera.Pipeline.Tests runs this after its build).
if (args.Length < 2)
{
    Console.Error.WriteLine("usage: Tessera.TinyPackages <folder> <seed>[-glyph]...");
    return 2;
}
foreach (var variant in args[1..])
{
    var glyph = variant.EndsWith("-glyph", StringComparison.Ordinal);
    if (!int.TryParse(glyph ? variant[..^"-glyph".Length] : variant, out var seed))
    {
        Console.Error.WriteLine($"variant '{variant}' is not a seed or seed-glyph (e.g. 3 or 4-glyph)");
        return 2;
    }
    var dir = Path.Combine(args[0], variant);
    if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
    TinyPackageWriter.Write(dir, seed, glyph);
}
return 0;
