using Tessera.Onnx;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Tessera.Export.Tests;

/// <summary>A user's own layer: y = x · scale, with a registered mapping (the registry's documented extension point).</summary>
public sealed class LearnedScale : nn.Module<Tensor, Tensor>
{
    public LearnedScale(long dim) : base(nameof(LearnedScale))
    {
        scale = nn.Parameter(rand(dim) + 0.5);
        RegisterComponents();
    }

    public Parameter scale;

    public override Tensor forward(Tensor x) => x.mul(scale);

    static LearnedScale() => ModuleMappings.Register<LearnedScale>((ctx, m, x) => ctx.Mul(x[0], ctx.Weight("scale", m.scale)));
}

/// <summary>A GPT-2-style block from stock layers: pre-LayerNorm, causal MultiheadAttention, GELU-tanh MLP with dropout.</summary>
public sealed class StockBlock : nn.Module<Tensor, Tensor>
{
    public StockBlock(long dim, long heads) : base(nameof(StockBlock))
    {
        ln_1 = nn.LayerNorm(dim);
        attn = nn.MultiheadAttention(dim, heads, dropout: 0.1);
        ln_2 = nn.LayerNorm(dim);
        fc = nn.Linear(dim, 4 * dim);
        act = nn.GELU(GELU.Approximate.tanh);
        proj = nn.Linear(4 * dim, dim);
        drop = nn.Dropout(0.1);
        gain = new LearnedScale(dim);
        RegisterComponents();
    }

    public LayerNorm ln_1, ln_2;
    public MultiheadAttention attn;
    public Linear fc, proj;
    public GELU act;
    public Dropout drop;
    public LearnedScale gain;

    /// <summary>x (B, T, D) → (B, T, D).</summary>
    public override Tensor forward(Tensor x)
    {
        long t = x.shape[1];
        var h = ln_1.forward(x).transpose(0, 1);                               // (T, B, D): TorchSharp's MHA layout
        // (TorchSharp's module adds attn_mask to the scores, so blocking takes a float mask of −inf.)
        var causal = zeros(t, t).masked_fill(ones(t, t, dtype: ScalarType.Bool).triu(1), float.NegativeInfinity);
        x = x.add(attn.call(h, h, h, null, false, causal).Item1.transpose(0, 1));
        return x.add(gain.forward(drop.forward(proj.forward(act.forward(fc.forward(ln_2.forward(x)))))));
    }

    // The block's own mapping: registered like any user mapping, calling the stock ones for its children.
    static StockBlock() => ModuleMappings.Register<StockBlock>((ctx, b, x) =>
    {
        var h = ctx.Module("ln_1", b.ln_1, x[0]);
        OnnxValue y;
        using (ctx.Enter("attn")) y = MultiheadAttentionExport.Export(ctx, b.attn, h, h, h, new MultiheadAttentionOptions { BatchFirst = true, Causal = true }).Output;
        var x1 = ctx.Add(x[0], y);
        var mlp = ctx.Module("proj", b.proj, ctx.Module("act", b.act, ctx.Module("fc", b.fc, ctx.Module("ln_2", b.ln_2, x1))));
        return ctx.Add(x1, ctx.Module("gain", b.gain, ctx.Module("drop", b.drop, mlp)));
    });
}

/// <summary>The whole model exports itself (<see cref="IOnnxExportable"/>): token + learned position embeddings, blocks, head.</summary>
public sealed class StockGpt : nn.Module<Tensor, Tensor>, IOnnxExportable
{
    public StockGpt(long vocab, long dim, long heads, int layers, long maxPositions) : base(nameof(StockGpt))
    {
        wte = nn.Embedding(vocab, dim);
        wpe = nn.Embedding(maxPositions, dim);
        drop = nn.Dropout(0.1);
        h = nn.ModuleList(Enumerable.Range(0, layers).Select(_ => new StockBlock(dim, heads)).ToArray());
        ln_f = nn.LayerNorm(dim);
        head = nn.Linear(dim, vocab, hasBias: false);
        RegisterComponents();
    }

    public Embedding wte, wpe;
    public Dropout drop;
    public ModuleList<StockBlock> h;
    public LayerNorm ln_f;
    public Linear head;

    /// <summary>ids (B, T) int64 → logits (B, T, vocab).</summary>
    public override Tensor forward(Tensor ids)
    {
        var x = drop.forward(wte.forward(ids).add(wpe.forward(arange(ids.shape[1]))));
        foreach (var block in h) x = block.forward(x);
        return head.forward(ln_f.forward(x));
    }

    public OnnxValue[] ExportOnnx(ExportContext ctx, OnnxValue[] inputs)
    {
        var ids = inputs[0];
        var length = ctx.Op("Squeeze", ctx.Slice(ctx.Op("Shape", ids), 1, 2, 0), ctx.I64(0));
        var positions = ctx.Op("Range", ctx.Graph.Constant<long>([0]), length, ctx.Graph.Constant<long>([1]));  // (T)
        var x = ctx.Module("drop", drop, ctx.Add(ctx.Module("wte", wte, ids), ctx.Module("wpe", wpe, positions)));
        x = ctx.Module("h", h, x); // a ModuleList exports as its items in order
        return [ctx.Module("head", head, ctx.Module("ln_f", ln_f, x))];
    }
}

[TestClass]
public sealed class StockModelExportTests
{
    private string _temp = "";

    [TestInitialize]
    public void Init() => _temp = TestSupport.NewTempDir();

    [TestCleanup]
    public void Cleanup() => Directory.Delete(_temp, recursive: true);

    [TestMethod]
    public void AGpt2StyleModelFromStockLayersAndACustomLayerMatchesTorchSharpAtTwoBatchSizesAndTwoLengths()
    {
        manual_seed(11);
        using var model = new StockGpt(vocab: 61, dim: 32, heads: 4, layers: 2, maxPositions: 32);
        var samples = new[] { (1, 5), (3, 5), (1, 11), (3, 11) }
            .Select(s => (IReadOnlyDictionary<string, Tensor>)new Dictionary<string, Tensor> { ["input_ids"] = randint(0, 61, [s.Item1, s.Item2]) }).ToList();
        var spec = new ModuleExportSpec
        {
            Inputs = [ExportTensor.Int64("input_ids", "batch", "sequence")],
            Outputs = [ExportTensor.Float("logits", "batch", "sequence", 61)],
            Samples = samples,
            GraphName = "stock_gpt",
        };
        var path = Path.Combine(_temp, "stock_gpt.onnx");
        var result = OnnxExporter.Export(model, spec, path);

        Assert.AreEqual(4, result.Parity.Count);
        foreach (var row in result.Parity)
            Assert.IsTrue(row.MaxAbsError <= 1e-4, $"{row.Case}: {row.MaxAbsError:E2}");
        Assert.IsTrue(result.Passed);
        Assert.IsTrue(File.Exists(Path.Combine(_temp, "stock_gpt.parity.json")));
        // Weight names follow the module tree, including the user's layer and the MHA's projections.
        var names = OnnxModelFile.Load(path).Graph.Initializer.Select(i => i.Name).ToHashSet();
        foreach (var n in new[] { "wte.weight", "h.0.gain.scale", "h.1.attn.q_proj_weight", "h.1.attn.out_proj.weight", "head.weight" })
            Assert.IsTrue(names.Contains(n), $"initializer {n} in [{string.Join(", ", names.Take(12))}...]");
        Assert.IsTrue(model.training is false, "export leaves the model in eval mode");
    }

    [TestMethod]
    public void TheExportIsCheckedOnEveryShapeSoAHardCodedSizeFails()
    {
        // A mapping that bakes in the sample's batch size passes one shape and fails the other.
        ModuleMappings.Register<FixedReshape>((ctx, m, x) => ctx.Reshape(x[0], 2, -1));
        using var m = new FixedReshape();
        var spec = new ModuleExportSpec
        {
            Inputs = [ExportTensor.Float("x", "batch", 6)],
            Outputs = [ExportTensor.Float("y", "batch", 6)],
            Samples = [new Dictionary<string, Tensor> { ["x"] = randn(2, 6) }],
        };
        Assert.IsTrue(OnnxExporter.Export(m, spec, Path.Combine(_temp, "a.onnx")).Passed);
        var twoShapes = spec with { Samples = [new Dictionary<string, Tensor> { ["x"] = randn(2, 6) }, new Dictionary<string, Tensor> { ["x"] = randn(3, 6) }] };
        var r = OnnxExporter.Export(m, twoShapes, Path.Combine(_temp, "b.onnx"));
        Assert.IsFalse(r.Passed);
        Assert.IsTrue(r.Parity[0].Passed && !r.Parity[1].Passed, "batch 2 passes, batch 3 fails");
        StringAssert.Contains(File.ReadAllText(r.ReportPath), "output shape differs");
    }

    public sealed class FixedReshape() : nn.Module<Tensor, Tensor>(nameof(FixedReshape))
    {
        public override Tensor forward(Tensor x) => x.reshape(x.shape[0], -1);
    }
}

/// <summary>The recipe `tessera export module` runs in the CLI test: the stock GPT with fixed seeds.</summary>
public sealed class StockGptRecipe : IExportRecipe
{
    public nn.Module CreateModule()
    {
        manual_seed(21);
        return new StockGpt(vocab: 40, dim: 16, heads: 2, layers: 1, maxPositions: 16);
    }

    public ModuleExportSpec CreateSpec() => new()
    {
        Inputs = [ExportTensor.Int64("input_ids", "batch", "sequence")],
        Outputs = [ExportTensor.Float("logits", "batch", "sequence", 40)],
        Samples = [new Dictionary<string, Tensor> { ["input_ids"] = randint(0, 40, [1, 4]) }, new Dictionary<string, Tensor> { ["input_ids"] = randint(0, 40, [2, 9]) }],
    };
}

[TestClass]
public sealed class ExportModuleCliTests
{
    [TestMethod]
    public void TesseraExportModuleRunsARecipeFromTheUsersAssemblyAndWritesTheParityReport()
    {
        var temp = TestSupport.NewTempDir();
        try
        {
            var dll = typeof(StockGptRecipe).Assembly.Location;
            var outPath = Path.Combine(temp, "gpt.onnx");
            var (code, stdout, stderr) = TestSupport.Tessera("export", "module", "--assembly", dll, "--recipe", typeof(StockGptRecipe).FullName!, "--out", outPath, "--int8");
            Assert.AreEqual(0, code, stdout + stderr);
            StringAssert.Contains(stdout, "[gpt int8]");
            Assert.IsTrue(File.Exists(Path.Combine(temp, "gpt.parity.json")));
            Assert.IsTrue(File.Exists(Path.Combine(temp, "gpt.int8.parity.json")));

            (code, _, stderr) = TestSupport.Tessera("export", "module", "--assembly", dll, "--recipe", "No.Such.Recipe", "--out", outPath);
            Assert.AreNotEqual(0, code);
            StringAssert.Contains(stderr, "no such type");
            StringAssert.Contains(stderr, typeof(StockGptRecipe).FullName!);
            Assert.IsFalse(stderr.Contains("   at "), stderr);
        }
        finally
        {
            Directory.Delete(temp, recursive: true);
        }
    }
}
