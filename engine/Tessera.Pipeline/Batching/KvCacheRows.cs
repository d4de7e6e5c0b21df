using Tessera.Abstractions;
using Tessera.Onnx;

namespace Tessera.Pipeline.Batching;

/// <summary>
/// Row operations on a batched KV cache that run on the AR's device, so the cache never comes to the host when
/// requests join or leave a batch. Every cache tensor is (batch, kv_heads, past, head_dim), each row left-padded
/// with zeros to the batch's <c>past</c>; one run handles every layer's key and value.
/// <list type="bullet">
/// <item><see cref="Select"/>: keeps some rows, in a new order (Gather on axis 0), and drops the first columns of
/// padding no row needs any more (Slice on axis 2).</item>
/// <item><see cref="Append"/>: left-pads two batches to one length (Pad on axis 2) and stacks them (Concat on axis 0).</item>
/// </list>
/// The graphs are built here (ONNX opset 17: Gather, Slice, Pad, Concat) and compiled on the AR's device; the only
/// host inputs are the row indices and pad widths (a few int64s).
/// </summary>
public sealed class KvCacheRows : IDisposable
{
    private readonly ICompiledModel _select, _append;
    private readonly int _tensors;

    private KvCacheRows(ICompiledModel select, ICompiledModel append, int tensors)
    {
        _select = select; _append = append; _tensors = tensors;
    }

    /// <summary>
    /// Builds and compiles both graphs with <paramref name="compile"/> (which should compile on the device that
    /// holds the cache). <paramref name="tensors"/> is the number of cache tensors (2 x layers).
    /// </summary>
    public static KvCacheRows Compile(Func<ModelSource, ICompiledModel> compile, int tensors, TensorElementType type, int kvHeads, int headDim)
    {
        var select = compile(ModelSource.FromBytes(SelectGraph(tensors, type, kvHeads, headDim), "kv-cache-select"));
        try
        {
            return new KvCacheRows(select, compile(ModelSource.FromBytes(AppendGraph(tensors, type, kvHeads, headDim), "kv-cache-append")), tensors);
        }
        catch
        {
            select.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Rows <paramref name="rows"/> of every cache tensor, with the first <paramref name="dropColumns"/> positions of
    /// axis 2 removed (padding every kept row has). Returns new device tensors owned by the caller; the inputs are
    /// left as they are. <paramref name="hostBytes"/> grows by the bytes of host inputs (the indices).
    /// </summary>
    public IDeviceTensor[] Select(IReadOnlyList<ITensorValue> cache, long[] rows, int dropColumns, ref long hostBytes)
    {
        var feeds = new Dictionary<string, ITensorValue>(_tensors + 2)
        {
            ["rows"] = HostTensor.Create(rows, rows.Length),
            ["start"] = HostTensor.Create(new long[] { dropColumns }, 1),
        };
        hostBytes += 8L * (rows.Length + 1);
        for (int i = 0; i < _tensors; i++) feeds[$"x.{i}"] = cache[i];
        return Take(_select.Run(feeds));
    }

    /// <summary>
    /// <paramref name="first"/> left-padded by <paramref name="padFirst"/> positions on axis 2, then
    /// <paramref name="second"/> left-padded by <paramref name="padSecond"/>, stacked on axis 0 (the padded lengths
    /// must agree). Returns new device tensors owned by the caller.
    /// </summary>
    public IDeviceTensor[] Append(IReadOnlyList<ITensorValue> first, int padFirst, IReadOnlyList<ITensorValue> second, int padSecond, ref long hostBytes)
    {
        var feeds = new Dictionary<string, ITensorValue>(2 * _tensors + 2)
        {
            // ONNX Pad: [begin of each axis..., end of each axis...] for (batch, kv_heads, past, head_dim).
            ["pads_a"] = HostTensor.Create(new long[] { 0, 0, padFirst, 0, 0, 0, 0, 0 }, 8),
            ["pads_b"] = HostTensor.Create(new long[] { 0, 0, padSecond, 0, 0, 0, 0, 0 }, 8),
        };
        hostBytes += 8L * 16;
        for (int i = 0; i < _tensors; i++) { feeds[$"a.{i}"] = first[i]; feeds[$"b.{i}"] = second[i]; }
        return Take(_append.Run(feeds));
    }

    private IDeviceTensor[] Take(RunOutputs outputs)
    {
        using (outputs)
        {
            var result = new IDeviceTensor[_tensors];
            for (int i = 0; i < _tensors; i++) result[i] = outputs.Take($"y.{i}");
            return result;
        }
    }

    private static byte[] SelectGraph(int tensors, TensorElementType type, int kvHeads, int headDim)
    {
        var g = new OnnxGraphBuilder("kv_cache_select");
        var rows = g.Input("rows", TensorElementType.Int64, OnnxGraphBuilder.Dims("rows"));
        var start = g.Input("start", TensorElementType.Int64, OnnxGraphBuilder.Dims(1));
        var end = g.Int64s(long.MaxValue);
        var axis2 = g.Int64s(2);
        for (int i = 0; i < tensors; i++)
        {
            using var _ = g.Scope($"cache.{i}");
            var x = g.Input($"x.{i}", type, OnnxGraphBuilder.Dims("batch", kvHeads, "past", headDim));
            var kept = g.Node("Gather", [x, rows], [OnnxAttribute.Int("axis", 0)]);                // (rows, kv, past, hd)
            var trimmed = g.Node("Slice", kept, start, end, axis2);                                     // (rows, kv, past - start, hd)
            g.Output(trimmed, $"y.{i}", type, OnnxGraphBuilder.Dims("rows", kvHeads, "kept_past", headDim));
        }
        return g.ToBytes();
    }

    private static byte[] AppendGraph(int tensors, TensorElementType type, int kvHeads, int headDim)
    {
        var g = new OnnxGraphBuilder("kv_cache_append");
        var padsA = g.Input("pads_a", TensorElementType.Int64, OnnxGraphBuilder.Dims(8));
        var padsB = g.Input("pads_b", TensorElementType.Int64, OnnxGraphBuilder.Dims(8));
        for (int i = 0; i < tensors; i++)
        {
            using var _ = g.Scope($"cache.{i}");
            var a = g.Input($"a.{i}", type, OnnxGraphBuilder.Dims("batch_a", kvHeads, "past_a", headDim));
            var b = g.Input($"b.{i}", type, OnnxGraphBuilder.Dims("batch_b", kvHeads, "past_b", headDim));
            var paddedA = g.Node("Pad", a, padsA);                                                      // (batch_a, kv, past, hd), zeros on the left
            var paddedB = g.Node("Pad", b, padsB);                                                      // (batch_b, kv, past, hd)
            var both = g.Node("Concat", [paddedA, paddedB], [OnnxAttribute.Int("axis", 0)]);            // (batch_a + batch_b, kv, past, hd)
            g.Output(both, $"y.{i}", type, OnnxGraphBuilder.Dims("batch", kvHeads, "past", headDim));
        }
        return g.ToBytes();
    }

    public void Dispose()
    {
        _select.Dispose();
        _append.Dispose();
    }
}
