using Tessera.Abstractions;
using Tessera.Onnx.Proto;

namespace Tessera.Onnx;

/// <summary>
/// Counts a graph's MatMul / Gemm FLOPs from the shapes it really runs at: <see cref="Probe"/> makes a copy of the
/// graph with every MatMul's and Gemm's first input and output exposed as extra graph outputs; run that copy once on
/// representative inputs and hand the observed shapes to <see cref="Count"/>. A MatMul producing Y from A (…, M, K)
/// costs 2·|Y|·K multiply-adds counted as FLOPs (batched attention products included); other ops are not counted,
/// so the figure is a lower bound on the work (in a transformer the matrix products are nearly all of it).
/// </summary>
public static class MatMulFlops
{
    /// <summary>One matrix product: the node, its first input and its output, and (Gemm) whether A is transposed.</summary>
    public sealed record Product(string Node, string OpType, string A, string Y, bool TransposeA);

    public static (ModelProto Probed, IReadOnlyList<Product> Products) Probe(ModelProto model)
    {
        var probed = model.Clone();
        var outputs = new HashSet<string>(probed.Graph.Output.Select(o => o.Name));
        var products = new List<Product>();
        foreach (var node in probed.Graph.Node)
        {
            if (node.Domain is not ("" or "ai.onnx") || node.OpType is not ("MatMul" or "Gemm")) continue;
            bool transA = node.OpType == "Gemm" && node.Attribute.Any(a => a.Name == "transA" && a.I != 0);
            products.Add(new Product(node.Name, node.OpType, node.Input[0], node.Output[0], transA));
            foreach (var name in new[] { node.Input[0], node.Output[0] })
                if (outputs.Add(name))
                    probed.Graph.Output.Add(new ValueInfoProto
                    {
                        Name = name,
                        // Element type only (no shape: rank unknown); the DiT's products are all float.
                        Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = ElementTypeOf(model, name) } },
                    });
        }
        return (probed, products);
    }

    /// <summary>FLOPs of the products given each value's observed shape.</summary>
    public static long Count(IEnumerable<Product> products, Func<string, long[]> shapeOf)
    {
        long total = 0;
        foreach (var p in products)
        {
            var a = shapeOf(p.A);
            var y = shapeOf(p.Y);
            if (a.Length == 0) throw new InvalidOperationException($"{p.OpType} '{p.Node}' has a scalar first input '{p.A}'.");
            long k = p.TransposeA ? a[^2] : a[^1];
            total += 2 * y.Aggregate(1L, (n, d) => n * d) * k;
        }
        return total;
    }

    /// <summary>The element type recorded for a value (value_info, inputs, initializers); float where none is recorded.</summary>
    private static int ElementTypeOf(ModelProto model, string name)
    {
        var g = model.Graph;
        var info = g.ValueInfo.Concat(g.Input).Concat(g.Output).FirstOrDefault(v => v.Name == name);
        if (info?.Type?.TensorType is { } t && t.ElemType != 0) return t.ElemType;
        if (g.Initializer.FirstOrDefault(i => i.Name == name) is { } init) return init.DataType;
        return (int)TensorElementType.Float32;
    }
}
