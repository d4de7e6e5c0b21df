using SkiaSharp;

namespace Tessera.Data;

/// <summary>PNG reading and writing for RGB byte images (row-major, 3 bytes per pixel).</summary>
public static class ImageFiles
{
    /// <summary>Encodes RGB pixels as PNG bytes (deterministic for the same pixels).</summary>
    public static byte[] EncodePng(byte[] rgb, int width, int height)
    {
        if (rgb.Length != width * height * 3)
            throw new ArgumentException($"{rgb.Length} bytes is not a {width}x{height} RGB image ({width * height * 3} bytes).", nameof(rgb));
        using var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque));
        var rgba = new byte[width * height * 4];
        for (int i = 0, j = 0; j < rgb.Length; i += 4, j += 3)
        {
            rgba[i] = rgb[j];
            rgba[i + 1] = rgb[j + 1];
            rgba[i + 2] = rgb[j + 2];
            rgba[i + 3] = 255;
        }
        System.Runtime.InteropServices.Marshal.Copy(rgba, 0, bitmap.GetPixels(), rgba.Length);
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    /// <summary>Writes a PNG atomically (temporary file, then rename).</summary>
    public static void WritePng(string path, byte[] rgb, int width, int height)
    {
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var temp = full + $".{Environment.ProcessId}.tmp";
        File.WriteAllBytes(temp, EncodePng(rgb, width, height));
        File.Move(temp, full, overwrite: true);
    }

    /// <summary>Source images wider or taller than this are refused before decoding (pixels per side).</summary>
    public const int DefaultMaxSide = 4096;

    /// <summary>Source images with more pixels than this are refused before decoding (16 megapixels: 64 MiB as RGBA).</summary>
    public const long DefaultMaxPixels = 16L << 20;

    /// <summary>Largest encoded image file read from disk (the server bounds uploads by its body limit).</summary>
    public const long MaxFileBytes = 64L << 20;

    /// <summary>
    /// Decodes an image file (PNG, JPEG, WebP, ...) to RGB, resized to <paramref name="size"/>x<paramref name="size"/>
    /// when given. Throws <see cref="InvalidDataException"/> naming the file when it is not an image, is not a regular
    /// file, or declares more pixels than the limits (checked from the header, before any pixel is decoded).
    /// </summary>
    public static (byte[] Rgb, int Width, int Height) ReadRgb(string path, int? size = null, ImageLimits? limits = null)
    {
        var bytes = Tessera.Abstractions.InputFiles.ReadAllBytes(path, "Image file", MaxFileBytes);
        return DecodeRgb(bytes, path, size, limits);
    }

    /// <summary>
    /// The same from encoded bytes (an upload); <paramref name="path"/> names the source in errors. The header's
    /// dimensions are checked against <paramref name="limits"/> before decoding, so a small file that declares a huge
    /// image (a decompression bomb) costs nothing.
    /// </summary>
    public static (byte[] Rgb, int Width, int Height) DecodeRgb(byte[] encoded, string path, int? size = null, ImageLimits? limits = null)
    {
        limits ??= ImageLimits.Default;
        using var data = SKData.CreateCopy(encoded);
        using var codec = SKCodec.Create(data)
            ?? throw new InvalidDataException($"{path} is not an image Tessera can read (PNG, JPEG, WebP, GIF or BMP).");
        var (w, h) = (codec.Info.Width, codec.Info.Height);
        if (w <= 0 || h <= 0)
            throw new InvalidDataException($"{path} declares a {w}x{h} image, which has no pixels.");
        if (w > limits.MaxSide || h > limits.MaxSide || (long)w * h > limits.MaxPixels)
            throw new InvalidDataException(
                $"{path} is {w}x{h} pixels; the limit is {limits.MaxSide} pixels per side and {limits.MaxPixels / 1_000_000.0:0.#} megapixels. Resize the image before sending it.");
        var info = new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Premul);
        using var decoded = new SKBitmap(info);
        var result = codec.GetPixels(info, decoded.GetPixels());
        if (result != SKCodecResult.Success)
            throw new InvalidDataException($"{path} could not be decoded ({(result == SKCodecResult.IncompleteInput ? "it is truncated" : result.ToString())}); send the whole, uncorrupted image.");
        SKBitmap bitmap = decoded;
        SKBitmap? resized = null;
        if (size is int s && (bitmap.Width != s || bitmap.Height != s))
        {
            resized = bitmap.Resize(new SKImageInfo(s, s, SKColorType.Rgba8888, SKAlphaType.Premul), new SKSamplingOptions(SKFilterMode.Linear, SKMipmapMode.Linear))
                ?? throw new InvalidDataException($"{path}: could not be resized to {s}x{s}.");
            bitmap = resized;
        }
        try
        {
            var rgba = bitmap.Bytes;
            var rgb = new byte[bitmap.Width * bitmap.Height * 3];
            for (int i = 0, j = 0; j < rgb.Length; i += 4, j += 3)
            {
                rgb[j] = rgba[i];
                rgb[j + 1] = rgba[i + 1];
                rgb[j + 2] = rgba[i + 2];
            }
            return (rgb, bitmap.Width, bitmap.Height);
        }
        finally
        {
            resized?.Dispose();
        }
    }
}

/// <summary>How large a source image may be (image-to-image input), checked from the image header before decoding.</summary>
/// <param name="MaxSide">Most pixels per side.</param>
/// <param name="MaxPixels">Most pixels in all (width x height).</param>
public sealed record ImageLimits(int MaxSide = ImageFiles.DefaultMaxSide, long MaxPixels = ImageFiles.DefaultMaxPixels)
{
    public static ImageLimits Default { get; } = new();
}
