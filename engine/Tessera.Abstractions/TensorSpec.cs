namespace Tessera.Abstractions;

/// <summary>
/// One dimension of a tensor signature: a fixed size, or a named symbolic size (<c>batch</c>, <c>past_sequence</c>)
/// that is chosen at run time.
/// </summary>
public readonly record struct Dimension(long? Size, string? Symbol)
{
    public static Dimension Fixed(long size) => new(size, null);
    public static Dimension Symbolic(string symbol) => new(null, symbol);
    public bool IsFixed => Size is not null;
    public override string ToString() => Size?.ToString() ?? Symbol ?? "?";
}

/// <summary>Name, element type and shape of a model input or output.</summary>
public sealed record TensorSpec(string Name, TensorElementType ElementType, IReadOnlyList<Dimension> Shape)
{
    public override string ToString() => $"{Name}: {ElementType.OnnxName()}[{string.Join(", ", Shape)}]";

    /// <summary>Whether a concrete shape fits this signature (same rank, fixed sizes equal).</summary>
    public bool Accepts(ReadOnlySpan<long> shape)
    {
        if (shape.Length != Shape.Count) return false;
        for (int i = 0; i < shape.Length; i++)
            if (Shape[i].Size is long s && s != shape[i]) return false;
        return true;
    }
}
