namespace Vendor.Plugin;

/// <summary>A float32 tensor of the reference kernels: row-major data and its shape.</summary>
internal sealed record FloatTensor(long[] Shape, float[] Data);

/// <summary>
/// YOUR RUNTIME GOES HERE. These reference kernels stand in for it: a plain C# interpreter of a few float32 ops, so
/// the project builds, loads and passes verify before your runtime is wired in. Replace <see cref="Supports"/> with
/// what your compiler or driver accepts and <see cref="Run"/> with a call into it; everything else in the plugin
/// (reading the graph, CheckSupport, refusing what you cannot run, tensors) stays as it is. The host runs every node
/// you do not support on the CPU under --fallback allow, so a small op set is enough to start.
/// </summary>
internal static class ReferenceKernels
{
    public static readonly IReadOnlySet<string> Ops = new HashSet<string>(StringComparer.Ordinal)
        { "Add", "Sub", "Mul", "Div", "Relu", "MatMul", "Gemm", "Identity" };

    /// <summary>Null when the node can run here; otherwise why not (reported by name through CheckSupport).</summary>
    public static string? Supports(OnnxNode node, Func<string, bool> isFloat)
    {
        if (node.Domain is not ("" or "ai.onnx") || !Ops.Contains(node.OpType))
            return $"{node.QualifiedOpType} is not implemented (this device runs {string.Join(", ", Ops.Order())})";
        foreach (var input in node.Inputs.Where(i => i.Length > 0))
            if (!isFloat(input))
                return $"input '{input}' is not known to be float32 (this device computes in float32 only)";
        if (node.OpType == "Gemm" && (node.Int("transA", 0) != 0))
            return "Gemm with transA is not implemented";
        return null;
    }

    /// <summary>Runs one node on float32 tensors; throws <see cref="InvalidOperationException"/> for inputs it cannot take.</summary>
    public static FloatTensor[] Run(OnnxNode node, FloatTensor?[] inputs)
    {
        FloatTensor In(int i) => i < inputs.Length && inputs[i] is { } t ? t : throw new InvalidOperationException($"input {i} is missing");
        return node.OpType switch
        {
            "Add" => [Broadcast(In(0), In(1), (a, b) => a + b)],
            "Sub" => [Broadcast(In(0), In(1), (a, b) => a - b)],
            "Mul" => [Broadcast(In(0), In(1), (a, b) => a * b)],
            "Div" => [Broadcast(In(0), In(1), (a, b) => a / b)],
            "Relu" => [new FloatTensor(In(0).Shape, In(0).Data.Select(v => v > 0 ? v : 0f).ToArray())],
            "Identity" => [In(0)],
            "MatMul" => [MatMul(In(0), In(1))],
            "Gemm" => [Gemm(In(0), In(1), inputs.Length > 2 ? inputs[2] : null, node.Float("alpha", 1f), node.Float("beta", 1f), node.Int("transB", 0) != 0)],
            _ => throw new InvalidOperationException($"{node.OpType} is not implemented"),
        };
    }

    /// <summary>Elementwise with numpy broadcasting (shapes aligned at the right; size-1 dimensions stretch).</summary>
    private static FloatTensor Broadcast(FloatTensor a, FloatTensor b, Func<float, float, float> op)
    {
        int rank = Math.Max(a.Shape.Length, b.Shape.Length);
        long Dim(long[] s, int i) => i - (rank - s.Length) is var j && j >= 0 ? s[j] : 1;
        var shape = new long[rank];
        for (int i = 0; i < rank; i++)
        {
            long x = Dim(a.Shape, i), y = Dim(b.Shape, i);
            if (x != y && x != 1 && y != 1)
                throw new InvalidOperationException($"shapes [{string.Join(", ", a.Shape)}] and [{string.Join(", ", b.Shape)}] do not broadcast");
            shape[i] = Math.Max(x, y);
        }
        var result = new float[Count(shape)];
        var index = new long[rank];
        for (long n = 0; n < result.Length; n++)
        {
            long ia = 0, ib = 0;
            for (int i = 0; i < rank; i++)
            {
                ia = ia * Dim(a.Shape, i) + (Dim(a.Shape, i) == 1 ? 0 : index[i]);
                ib = ib * Dim(b.Shape, i) + (Dim(b.Shape, i) == 1 ? 0 : index[i]);
            }
            result[n] = op(a.Data[ia], b.Data[ib]);
            for (int i = rank - 1; i >= 0 && ++index[i] == shape[i]; i--) index[i] = 0;
        }
        return new FloatTensor(shape, result);
    }

    /// <summary>numpy matmul: (..., M, K) x (..., K, N) with broadcast batch dimensions; rank-1 operands as in numpy.</summary>
    private static FloatTensor MatMul(FloatTensor a, FloatTensor b)
    {
        bool vectorA = a.Shape.Length == 1, vectorB = b.Shape.Length == 1;
        var sa = vectorA ? [1, a.Shape[0]] : a.Shape;
        var sb = vectorB ? [b.Shape[0], 1] : b.Shape;
        long m = sa[^2], k = sa[^1], n = sb[^1];
        if (sb[^2] != k) throw new InvalidOperationException($"MatMul of [{string.Join(", ", a.Shape)}] and [{string.Join(", ", b.Shape)}]: inner sizes {k} and {sb[^2]} differ");
        // Batch dimensions broadcast like an elementwise op over the per-matrix index.
        var batchA = new FloatTensor(sa[..^2], Enumerable.Range(0, (int)Count(sa[..^2])).Select(i => (float)i).ToArray());
        var batchB = new FloatTensor(sb[..^2], Enumerable.Range(0, (int)Count(sb[..^2])).Select(i => (float)i).ToArray());
        var pairsA = Broadcast(batchA, batchB, (x, _) => x);
        var pairsB = Broadcast(batchA, batchB, (_, y) => y);
        var result = new float[pairsA.Data.Length * m * n];
        for (int p = 0; p < pairsA.Data.Length; p++)
        {
            long offA = (long)pairsA.Data[p] * m * k, offB = (long)pairsB.Data[p] * k * n, offC = p * m * n;
            for (long i = 0; i < m; i++)
                for (long j = 0; j < n; j++)
                {
                    float sum = 0;
                    for (long t = 0; t < k; t++) sum += a.Data[offA + i * k + t] * b.Data[offB + t * n + j];
                    result[offC + i * n + j] = sum;
                }
        }
        var shape = pairsA.Shape.Concat(vectorA ? [] : new[] { m }).Concat(vectorB ? [] : new[] { n }).ToArray();
        return new FloatTensor(shape, result);
    }

    /// <summary>Gemm: alpha · A · B(ᵀ) + beta · C, A (M, K), B (K, N) or (N, K) with transB, C broadcast to (M, N).</summary>
    private static FloatTensor Gemm(FloatTensor a, FloatTensor b, FloatTensor? c, float alpha, float beta, bool transB)
    {
        if (a.Shape.Length != 2 || b.Shape.Length != 2) throw new InvalidOperationException("Gemm takes 2-D A and B");
        long m = a.Shape[0], k = a.Shape[1], n = transB ? b.Shape[0] : b.Shape[1];
        if ((transB ? b.Shape[1] : b.Shape[0]) != k) throw new InvalidOperationException($"Gemm: B [{string.Join(", ", b.Shape)}] does not match K = {k}");
        var product = new float[m * n];
        for (long i = 0; i < m; i++)
            for (long j = 0; j < n; j++)
            {
                float sum = 0;
                for (long t = 0; t < k; t++) sum += a.Data[i * k + t] * (transB ? b.Data[j * k + t] : b.Data[t * n + j]);
                product[i * n + j] = alpha * sum;
            }
        var ab = new FloatTensor([m, n], product);
        return c is null ? ab : Broadcast(ab, new FloatTensor(c.Shape, c.Data.Select(v => beta * v).ToArray()), (x, y) => x + y);
    }

    private static long Count(long[] shape) => shape.Aggregate(1L, (x, y) => x * y);
}
