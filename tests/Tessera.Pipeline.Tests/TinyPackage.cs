namespace Tessera.Pipeline.Tests;

/// <summary>
/// Tiny random-weight model packages (made with the real networks and exporter by tests/Tessera.TinyPackages after
/// this project's build, so these tests need no TorchSharp), copied into a folder the test owns.
/// </summary>
internal static class TinyPackage
{
    private static string Prebuilt => Path.Combine(AppContext.BaseDirectory, "tiny-packages");

    /// <summary>Copies the package for <paramref name="seed"/> into <paramref name="dir"/> and returns it.</summary>
    public static string Create(string dir, int seed = 0, bool glyphImage = false)
    {
        var variant = glyphImage ? $"{seed}-glyph" : seed.ToString();
        var source = Path.Combine(Prebuilt, variant);
        if (!Directory.Exists(source))
            throw new InvalidOperationException($"No tiny package '{variant}' in {Prebuilt}: add it to TinyPackageVariants in Tessera.Pipeline.Tests.csproj and rebuild.");
        Directory.CreateDirectory(dir);
        foreach (var file in Directory.GetFiles(source)) File.Copy(file, Path.Combine(dir, Path.GetFileName(file)));
        return dir;
    }
}
