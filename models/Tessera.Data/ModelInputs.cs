namespace Tessera.Data;

/// <summary>
/// How images and tokens become network inputs, shared by training (TorchSharp) and inference (ONNX graphs) so the
/// two can never disagree.
/// </summary>
public static class ModelInputs
{
    /// <summary>RGB bytes (H, W, 3) → channel-first floats (3, H, W) in [-1, 1].</summary>
    public static void ToChannelFirst(ReadOnlySpan<byte> rgb, Span<float> destination)
    {
        int plane = rgb.Length / 3;
        for (int p = 0; p < plane; p++)
            for (int ch = 0; ch < 3; ch++)
                destination[ch * plane + p] = rgb[3 * p + ch] / 127.5f - 1f;
    }

    /// <summary>Channel-first floats in [-1, 1] (3, S, S) → RGB bytes (S, S, 3), rounded and clamped.</summary>
    public static byte[] ToRgb(ReadOnlySpan<float> chw, int size) => ToRgb(chw, size, size);

    /// <summary>Channel-first floats in [-1, 1] (3, H, W) → RGB bytes (H, W, 3), rounded and clamped.</summary>
    public static byte[] ToRgb(ReadOnlySpan<float> chw, int width, int height)
    {
        int plane = width * height;
        var rgb = new byte[plane * 3];
        for (int p = 0; p < plane; p++)
            for (int c = 0; c < 3; c++)
                rgb[3 * p + c] = (byte)Math.Clamp(Math.Round((chw[c * plane + p] + 1) * 127.5), 0, 255);
        return rgb;
    }

    /// <summary>Decoder glyph ids for bytes: byte b → b + 1, padded with 0 (no glyph) to <paramref name="length"/>.</summary>
    public static long[] GlyphIds(ReadOnlySpan<byte> bytes, int length)
    {
        var ids = new long[length];
        for (int i = 0; i < Math.Min(bytes.Length, length); i++) ids[i] = bytes[i] + 1;
        return ids;
    }

    /// <summary>
    /// The decoder's prior grid (G, G) from a target grid (T, T) of visual tokens, by nearest-neighbour upsampling
    /// (G a multiple of T; 8x8 → 16x16 for the shipped model).
    /// </summary>
    public static long[] PriorFromTarget(ReadOnlySpan<int> target, int targetGrid, int priorGrid)
    {
        if (priorGrid % targetGrid != 0) throw new ArgumentException($"A {priorGrid}x{priorGrid} prior cannot be upsampled from a {targetGrid}x{targetGrid} grid.");
        return Upsample(target, targetGrid, targetGrid, priorGrid / targetGrid);
    }

    /// <summary>Nearest-neighbour upsampling of a (rows, cols) token grid by <paramref name="factor"/> on both axes, row-major.</summary>
    public static long[] Upsample(ReadOnlySpan<int> grid, int rows, int cols, int factor)
    {
        int outCols = cols * factor;
        var result = new long[rows * factor * outCols];
        for (int r = 0; r < rows * factor; r++)
            for (int c = 0; c < outCols; c++)
                result[r * outCols + c] = grid[r / factor * cols + c / factor];
        return result;
    }
}
