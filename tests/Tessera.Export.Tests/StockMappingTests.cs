using Tessera.Onnx;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Tessera.Export.Tests;

/// <summary>Each stock layer's mapping, exported alone through the generic entry point, against TorchSharp.</summary>
[TestClass]
public sealed class StockMappingTests
{
    private string _temp = "";

    [TestInitialize]
    public void Init() => _temp = TestSupport.NewTempDir();

    [TestCleanup]
    public void Cleanup() => Directory.Delete(_temp, recursive: true);

    private ExportResult Export(string name, nn.Module module, IReadOnlyList<ExportTensor> inputs, IReadOnlyList<ExportTensor> outputs,
        IReadOnlyList<Tensor[]> samples, Func<IReadOnlyDictionary<string, Tensor>, Tensor[]>? reference = null, double tolerance = 1e-5)
    {
        var spec = new ModuleExportSpec
        {
            Inputs = inputs,
            Outputs = outputs,
            Samples = samples.Select(s => (IReadOnlyDictionary<string, Tensor>)inputs.Select((i, k) => (i.Name, s[k])).ToDictionary(p => p.Name, p => p.Item2)).ToList(),
            Reference = reference,
            Tolerance = tolerance,
            GraphName = name,
        };
        var r = OnnxExporter.Export(module, spec, Path.Combine(_temp, name + ".onnx"));
        foreach (var row in r.Parity) Assert.IsTrue(row.Passed, $"{name} {row.Case} {row.Output}: max abs error {row.MaxAbsError:E2} > {row.Tolerance:E0}");
        return r;
    }

    private void Unary(string name, nn.Module module, params long[][] shapes) =>
        Export(name, module, [ExportTensor.Float("x", Enumerable.Range(0, shapes[0].Length).Select(i => (object)$"d{i}").ToArray())],
            [ExportTensor.Float("y", Enumerable.Range(0, shapes[0].Length).Select(i => (object)$"o{i}").ToArray())],
            shapes.Select(s => new[] { randn(s) * 2 }).ToList());

    [TestMethod]
    public void EachStockLayerExportsWithItsSettings()
    {
        manual_seed(5);
        Unary("relu", nn.ReLU(), [2, 7], [3, 5]);
        Unary("tanh", nn.Tanh(), [2, 7]);
        Unary("sigmoid", nn.Sigmoid(), [2, 7]);
        Unary("softmax_dim1", nn.Softmax(1), [2, 7, 3]);
        Unary("log_softmax", nn.LogSoftmax(-1), [4, 9]);
        Unary("leaky_relu", nn.LeakyReLU(0.2), [4, 9]);
        Unary("gelu_exact", nn.GELU(), [4, 9]);
        Unary("gelu_tanh", nn.GELU(GELU.Approximate.tanh), [4, 9]);
        Unary("identity", nn.Identity(), [4, 9]);
        var dropout = nn.Dropout(0.5);
        Unary("dropout_eval", dropout, [4, 9]);
        var ln2d = nn.LayerNorm([4, 8]);
        using (no_grad()) { ln2d.weight!.uniform_(0.5, 1.5); ln2d.bias!.uniform_(-0.5, 0.5); }
        Unary("layernorm_2d_shape", ln2d, [3, 4, 8], [1, 4, 8]);
        Unary("layernorm_no_affine", nn.LayerNorm(8, elementwise_affine: false), [3, 8]);
        Unary("layernorm_no_bias", nn.LayerNorm(8, bias: false), [3, 8]);
        Unary("linear_no_bias", nn.Linear(8, 5, hasBias: false), [3, 8]);
        Unary("conv1d_stride_pad_dilation_groups", nn.Conv1d(4, 6, 3, stride: 2, padding: 2, dilation: 2, groups: 2), [2, 4, 17], [1, 4, 9]);
        Unary("conv1d_same", nn.Conv1d(3, 5, 4, padding: Padding.Same), [2, 3, 10]);
        Unary("conv2d_valid", nn.Conv2d(3, 4, 3, padding: Padding.Valid), [1, 3, 8, 8]);
        Unary("sequential", nn.Sequential(("fc", nn.Linear(8, 16)), ("act", nn.ReLU()), ("drop", nn.Dropout(0.3)), ("out", nn.Linear(16, 2))), [5, 8]);
        var list = nn.ModuleList<nn.Module<Tensor, Tensor>>(nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 3));
        Export("module_list_chain", list, [ExportTensor.Float("x", "b", 8)], [ExportTensor.Float("y", "b", 3)], [[randn(5, 8)]],
            s => [list.Aggregate(s["x"], (x, m) => m.call(x))]);
        var dict = nn.ModuleDict<nn.Module<Tensor, Tensor>>(("up", nn.Linear(8, 12)), ("act", nn.SiLU()), ("down", nn.Linear(12, 4)));
        var r = Export("module_dict_chain", dict, [ExportTensor.Float("x", "b", 8)], [ExportTensor.Float("y", "b", 4)], [[randn(5, 8)]],
            s =>
            {
                var x = s["x"];
                foreach (var (_, m) in dict) x = m.call(x);
                return [x];
            });
        CollectionAssert.IsSubsetOf(new[] { "up.weight", "down.bias" }, OnnxModelFile.Load(r.ModelPath).Graph.Initializer.Select(i => i.Name).ToList());
    }

    [TestMethod]
    public void EmbeddingWithPaddingIndexIsAPlainLookupInEvaluation()
    {
        var emb = nn.Embedding(20, 6, padding_idx: 0);
        Export("embedding_padding_idx", emb, [ExportTensor.Int64("ids", "b", "t")], [ExportTensor.Float("y", "b", "t", 6)],
            [[tensor(new long[] { 0, 3, 19, 0 }).view(2, 2)], [randint(0, 20, [3, 5])]]);
    }

    [TestMethod]
    public void DropoutInTrainingModeRefusesToExportAndSaysToCallEval()
    {
        var ctx = new ExportContext("t");
        var x = ctx.Graph.Input("x", Tessera.Abstractions.TensorElementType.Float32, OnnxGraphBuilder.Dims(2, 4));
        using var seq = nn.Sequential(("fc", nn.Linear(4, 4)), ("drop", nn.Dropout(0.1)));
        seq.train();
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => ctx.Module("head", seq, x));
        StringAssert.Contains(e.Message, "'head.drop'");
        StringAssert.Contains(e.Message, "call eval()");
    }

    [TestMethod]
    public void MultiheadAttentionSequenceFirstWithKeyPaddingAndAttentionMasksMatchesTorchSharp()
    {
        manual_seed(9);
        using var mha = nn.MultiheadAttention(16, 4);
        var q = randn(5, 3, 16);   // (L, N, E)
        var kv = randn(7, 3, 16);  // (S, N, E)
        var padding = zeros(3, 7, dtype: ScalarType.Bool);
        padding[1, 6] = true;
        padding[2, 0] = true;
        var blocked = rand(5, 7).gt(0.8f);
        blocked[.., 3] = false;     // every query keeps a key
        var additive = zeros(5, 7).masked_fill(blocked, float.NegativeInfinity);
        var r = Export("mha_seq_first", mha,
            [ExportTensor.Float("q", "L", "N", 16), ExportTensor.Float("k", "S", "N", 16), ExportTensor.Float("v", "S", "N", 16),
             ExportTensor.Bool("key_padding_mask", "N", "S"), ExportTensor.Float("attn_mask", "L", "S")],
            [ExportTensor.Float("out", "L", "N", 16), ExportTensor.Float("weights", "N", "L", "S")],
            [[q, kv, kv, padding, additive]],
            s =>
            {
                var (o, w) = mha.call(s["q"], s["k"], s["v"], s["key_padding_mask"], true, s["attn_mask"]);
                return [o, w];
            });
        Assert.AreEqual(2, r.Parity.Count, "both outputs (attention output and head-averaged weights) are checked");

        // A bool attn_mask: libtorch's module adds it as 0/1 instead of blocking; the export computes what the module does.
        Export("mha_bool_attn_mask", mha,
            [ExportTensor.Float("q", "L", "N", 16), ExportTensor.Float("k", "S", "N", 16), ExportTensor.Float("v", "S", "N", 16),
             ExportTensor.Bool("key_padding_mask", "N", "S"), ExportTensor.Bool("attn_mask", "L", "S")],
            [ExportTensor.Float("out", "L", "N", 16)],
            [[q, kv, kv, padding, blocked]],
            s => [mha.call(s["q"], s["k"], s["v"], s["key_padding_mask"], false, s["attn_mask"]).Item1]);
    }

    [TestMethod]
    public void MultiheadAttentionBatchFirstWithTheCausalMaskMatchesTorchSharp()
    {
        manual_seed(10);
        using var mha = nn.MultiheadAttention(24, 3, bias: false);
        mha.eval();
        ModuleMappings.RegisterMulti<CausalSelfAttention>((ctx, m, x) =>
        {
            using var _ = ctx.Enter("mha");
            return [MultiheadAttentionExport.Export(ctx, m.mha, x[0], x[0], x[0], new MultiheadAttentionOptions { BatchFirst = true, Causal = true }).Output];
        });
        using var module = new CausalSelfAttention(mha);
        foreach (var t in new[] { 1, 6 })
            Export($"mha_batch_first_causal_{t}", module, [ExportTensor.Float("x", "B", "T", 24)], [ExportTensor.Float("y", "B", "T", 24)], [[randn(2, t, 24)], [randn(1, 9, 24)]]);
    }

    public sealed class CausalSelfAttention : nn.Module<Tensor, Tensor>
    {
        public CausalSelfAttention(MultiheadAttention m) : base(nameof(CausalSelfAttention))
        {
            mha = m;
            RegisterComponents();
        }

        public MultiheadAttention mha;

        public override Tensor forward(Tensor x)
        {
            long t = x.shape[1];
            var h = x.transpose(0, 1);
            var causal = zeros(t, t).masked_fill(ones(t, t, dtype: ScalarType.Bool).triu(1), float.NegativeInfinity);
            return mha.call(h, h, h, null, false, causal).Item1.transpose(0, 1);
        }
    }

    [TestMethod]
    public void LookupWalksTheBaseTypeChainAndAnExactRegistrationWins()
    {
        ModuleMappings.Register<BaseDouble>((ctx, _, x) => ctx.Add(x[0], x[0]));
        var ctx = new ExportContext("t");
        var x = ctx.Graph.Input("x", Tessera.Abstractions.TensorElementType.Float32, OnnxGraphBuilder.Dims(2));
        Assert.IsTrue(ModuleMappings.CanExport(typeof(DerivedDouble)));
        Assert.AreEqual("Add", Op(ctx, ctx.Module("derived", new DerivedDouble(), x)));
        ModuleMappings.Register<DerivedDouble>((c, _, v) => c.Mul(v[0], c.F32(2f)));
        Assert.AreEqual("Mul", Op(ctx, ctx.Module("derived2", new DerivedDouble(), x)));
        Assert.AreEqual("Add", Op(ctx, ctx.Module("base", new BaseDouble(), x)));
    }

    private static string Op(ExportContext ctx, OnnxValue v) => ctx.Graph.Build().Graph.Node.Last(n => n.Output.Contains(v.Name)).OpType;

    public class BaseDouble() : nn.Module<Tensor, Tensor>(nameof(BaseDouble))
    {
        public override Tensor forward(Tensor x) => x * 2;
    }

    public sealed class DerivedDouble : BaseDouble;

    [TestMethod]
    public void AnUnmappedModuleNamesItsPathItsTypeAndHowToRegisterAMapping()
    {
        var ctx = new ExportContext("t");
        var x = ctx.Graph.Input("x", Tessera.Abstractions.TensorElementType.Float32, OnnxGraphBuilder.Dims(1, 4));
        using var seq = nn.Sequential(("fc", nn.Linear(4, 4)), ("odd", new Unmapped()));
        var e = Assert.ThrowsExactly<UnmappedModuleException>(() => ctx.Module("head", seq, x));
        Assert.AreEqual("head.odd", e.ModulePath);
        StringAssert.Contains(e.Message, "Tessera.Export.Tests.StockMappingTests+Unmapped");
        StringAssert.Contains(e.Message, "ModuleMappings.Register<Unmapped>");
        StringAssert.Contains(e.Message, "IOnnxExportable");
    }

    public sealed class Unmapped() : nn.Module<Tensor, Tensor>(nameof(Unmapped))
    {
        public override Tensor forward(Tensor x) => x;
    }
}
