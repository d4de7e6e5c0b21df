namespace Tessera.GlmImage;

/// <summary>
/// Rules on the official checkpoint's tensor names, in one place for the exporters and the size plan: which tensors
/// belong to image-to-image (not built), and which lie beyond a layer slice.
/// </summary>
public static class GlmImageTensorNames
{
    public const string ArLayers = "model.language_model.layers.";
    public const string DitLayers = "transformer_blocks.";
    public const string T5Layers = "encoder.block.";

    /// <summary>The AR checkpoint's vision tower and VQ (image-to-image).</summary>
    public static bool IsArImageToImage(string name) =>
        name.StartsWith("model.visual.", StringComparison.Ordinal) || name.StartsWith("model.vqmodel.", StringComparison.Ordinal);

    /// <summary>The VAE checkpoint's encoder side (image-to-image).</summary>
    public static bool IsVaeEncoder(string name) =>
        name.StartsWith("encoder.", StringComparison.Ordinal) || name.StartsWith("quant_conv.", StringComparison.Ordinal);

    /// <summary>The layer index in "&lt;prefix&gt;&lt;i&gt;.…", or null for a name outside the layers.</summary>
    public static int? LayerIndex(string name, string prefix)
    {
        if (!name.StartsWith(prefix, StringComparison.Ordinal)) return null;
        var rest = name.AsSpan(prefix.Length);
        int dot = rest.IndexOf('.');
        return dot > 0 && int.TryParse(rest[..dot], out var i) ? i : null;
    }

    /// <summary>True for a tensor of layer <paramref name="kept"/> or later (null keeps every layer).</summary>
    public static bool BeyondSlice(string name, string prefix, int? kept) => kept is { } n && LayerIndex(name, prefix) is { } i && i >= n;
}
