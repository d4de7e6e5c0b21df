using static TorchSharp.torch;

namespace Tessera.Models.Training;

/// <summary>
/// AdamW (decoupled weight decay on matrices only) that also keeps an exponential moving average of the
/// weights. With <see cref="FusedEma"/> the average is updated inside the same per-parameter loop as the Adam
/// update, while that parameter is still in cache, instead of a second pass over all weights afterwards.
/// State (moments, EMA, step) is exposed for checkpoints.
/// </summary>
public sealed class AdamWEma
{
    private readonly (string Name, TorchSharp.Modules.Parameter P)[] _params;
    private readonly Tensor[] _m, _v, _ema;
    private readonly bool[] _decay;

    public AdamWEma(IEnumerable<(string Name, TorchSharp.Modules.Parameter P)> parameters, double beta1 = 0.9, double beta2 = 0.95,
        double eps = 1e-8, double weightDecay = 0.01, double emaDecay = 0.995, bool fusedEma = true)
    {
        _params = parameters.ToArray();
        _m = _params.Select(p => zeros_like(p.P).requires_grad_(false)).ToArray();
        _v = _params.Select(p => zeros_like(p.P).requires_grad_(false)).ToArray();
        _ema = _params.Select(p => p.P.detach().clone()).ToArray();
        // Matrices and conv kernels decay; norms, biases, codebooks and embeddings do not.
        _decay = _params.Select(p => p.P.dim() >= 2 && !p.Name.Contains("embed") && !p.Name.Contains("codebook")).ToArray();
        Beta1 = beta1; Beta2 = beta2; Eps = eps; WeightDecay = weightDecay; EmaDecay = emaDecay; FusedEma = fusedEma;
    }

    public double Beta1 { get; }
    public double Beta2 { get; }
    public double Eps { get; }
    public double WeightDecay { get; }
    public double EmaDecay { get; }
    public bool FusedEma { get; }
    public long StepCount { get; private set; }

    public void ZeroGrad()
    {
        foreach (var (_, p) in _params) p.grad?.zero_();
    }

    /// <summary>One update with learning rate <paramref name="lr"/>.</summary>
    public void Step(double lr)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        StepCount++;
        double bc1 = 1 - Math.Pow(Beta1, StepCount), bc2 = 1 - Math.Pow(Beta2, StepCount);
        for (int i = 0; i < _params.Length; i++)
        {
            var p = _params[i].P;
            var g = p.grad;
            if (g is null) continue;
            _m[i].mul_(Beta1).add_(g, alpha: 1 - Beta1);
            _v[i].mul_(Beta2).addcmul_(g, g, value: 1 - Beta2);
            var denom = (_v[i] / bc2).sqrt_().add_(Eps);
            if (_decay[i] && WeightDecay > 0) p.mul_(1 - lr * WeightDecay);
            p.addcdiv_(_m[i], denom, value: -lr / bc1);
            if (FusedEma) _ema[i].lerp_(p, 1 - EmaDecay);
        }
        if (!FusedEma)
            for (int i = 0; i < _params.Length; i++) _ema[i].lerp_(_params[i].P, 1 - EmaDecay);
    }

    /// <summary>Tensors to checkpoint, by name.</summary>
    public IEnumerable<(string Name, Tensor Tensor)> State() =>
        _params.SelectMany((p, i) => new[] { ($"adam.m.{p.Name}", _m[i]), ($"adam.v.{p.Name}", _v[i]), ($"ema.{p.Name}", _ema[i]) })
            .Append(("adam.step", tensor(new[] { StepCount })));

    /// <summary>Restores state saved by <see cref="State"/>; every tensor must be present with the same shape.</summary>
    public void Load(IReadOnlyDictionary<string, Tensor> saved)
    {
        using var noGrad = no_grad();
        for (int i = 0; i < _params.Length; i++)
        {
            var name = _params[i].Name;
            Copy(saved, $"adam.m.{name}", _m[i]);
            Copy(saved, $"adam.v.{name}", _v[i]);
            Copy(saved, $"ema.{name}", _ema[i]);
        }
        StepCount = saved.TryGetValue("adam.step", out var s) ? s.data<long>()[0] : throw new TrainingCheckpointException("checkpoint has no optimizer step count");
    }

    internal static void Copy(IReadOnlyDictionary<string, Tensor> saved, string name, Tensor target)
    {
        if (!saved.TryGetValue(name, out var t)) throw new TrainingCheckpointException($"checkpoint has no tensor '{name}' (was it written by another model config?)");
        if (!t.shape.SequenceEqual(target.shape))
            throw new TrainingCheckpointException($"checkpoint tensor '{name}' has shape [{string.Join(", ", t.shape)}] but the model has [{string.Join(", ", target.shape)}]; the config differs from the one it was trained with.");
        target.copy_(t);
    }

    /// <summary>Copies the EMA weights into the model's parameters (for export or evaluation).</summary>
    public void CopyEmaInto()
    {
        using var noGrad = no_grad();
        for (int i = 0; i < _params.Length; i++) _params[i].P.copy_(_ema[i]);
    }
}
