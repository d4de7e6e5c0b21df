namespace Tessera.Onnx;

/// <summary>A named value in a graph under construction (an input, initializer or node output).</summary>
public readonly record struct OnnxValue(string Name)
{
    /// <summary>The empty name ONNX uses for an omitted optional input.</summary>
    public static OnnxValue None => new("");

    public override string ToString() => Name;
}
