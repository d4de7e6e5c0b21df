#!/usr/bin/env python3
"""Writes a small GPT-2- or Llama-style checkpoint with random weights in Hugging Face's layout and names, and the
reference outputs PyTorch computes for it, for Tessera's checkpoint-export tests.

The forward passes below are this project's own reading of the published architecture descriptions (GPT-2:
Radford et al. 2019 and Hugging Face's documented GPT2LMHeadModel weight layout, Conv1D weights stored [in, out];
Llama: Touvron et al. 2023 — RMSNorm, rotary "rotate half" positions, SwiGLU, grouped-query attention). They are
not Hugging Face's code. Only torch and numpy are used (Debian's python3-torch); safetensors files are written by
hand (safetensors_io.py).

usage: hf_decoder.py --arch gpt2|llama --format safetensors|bin|sharded --out DIR [--seed N] [--new-tokens 24]
"""
import argparse
import json
import math
import os

import torch

from safetensors_io import save_safetensors


def gpt2_config():
    return {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": 96, "n_embd": 32, "n_head": 4,
            "n_layer": 2, "n_positions": 64, "n_ctx": 64, "n_inner": None, "activation_function": "gelu_new",
            "layer_norm_epsilon": 1e-5, "attn_pdrop": 0.1, "embd_pdrop": 0.1, "resid_pdrop": 0.1,
            "initializer_range": 0.02, "bos_token_id": 95, "eos_token_id": 95, "scale_attn_weights": True,
            "use_cache": True, "torch_dtype": "float32", "transformers_version": "4.57.0"}


def llama_config():
    return {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 96, "hidden_size": 32,
            "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "hidden_act": "silu", "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
            "rope_scaling": None, "attention_bias": False, "mlp_bias": False, "tie_word_embeddings": False,
            "pretraining_tp": 1, "bos_token_id": 1, "eos_token_id": 2, "initializer_range": 0.02,
            "use_cache": True, "torch_dtype": "float32", "transformers_version": "4.57.0"}


def random_weights(arch, c, g):
    def r(*shape, std=0.2):
        return (torch.randn(*shape, generator=g) * std).contiguous()

    w = {}
    if arch == "gpt2":
        d, f = c["n_embd"], 4 * c["n_embd"]
        w["transformer.wte.weight"] = r(c["vocab_size"], d, std=0.5)
        w["transformer.wpe.weight"] = r(c["n_positions"], d, std=0.1)
        for i in range(c["n_layer"]):
            p = f"transformer.h.{i}."
            w[p + "ln_1.weight"] = 1 + r(d, std=0.1)
            w[p + "ln_1.bias"] = r(d, std=0.1)
            w[p + "attn.c_attn.weight"] = r(d, 3 * d)      # Conv1D: [in, out]
            w[p + "attn.c_attn.bias"] = r(3 * d, std=0.05)
            w[p + "attn.c_proj.weight"] = r(d, d)
            w[p + "attn.c_proj.bias"] = r(d, std=0.05)
            w[p + "ln_2.weight"] = 1 + r(d, std=0.1)
            w[p + "ln_2.bias"] = r(d, std=0.1)
            w[p + "mlp.c_fc.weight"] = r(d, f)
            w[p + "mlp.c_fc.bias"] = r(f, std=0.05)
            w[p + "mlp.c_proj.weight"] = r(f, d)
            w[p + "mlp.c_proj.bias"] = r(d, std=0.05)
            # Older GPT-2 checkpoints carry the causal mask as a buffer; loaders must ignore it.
            n = c["n_positions"]
            w[p + "attn.bias"] = torch.tril(torch.ones(n, n)).view(1, 1, n, n).contiguous()
        w["transformer.ln_f.weight"] = 1 + r(d, std=0.1)
        w["transformer.ln_f.bias"] = r(d, std=0.1)
        # lm_head.weight is tied to wte and not saved (as save_pretrained does).
    else:
        d, f = c["hidden_size"], c["intermediate_size"]
        h, kv = c["num_attention_heads"], c["num_key_value_heads"]
        hd = d // h
        w["model.embed_tokens.weight"] = r(c["vocab_size"], d, std=0.5)
        for i in range(c["num_hidden_layers"]):
            p = f"model.layers.{i}."
            w[p + "input_layernorm.weight"] = 1 + r(d, std=0.1)
            w[p + "self_attn.q_proj.weight"] = r(h * hd, d)
            w[p + "self_attn.k_proj.weight"] = r(kv * hd, d)
            w[p + "self_attn.v_proj.weight"] = r(kv * hd, d)
            w[p + "self_attn.o_proj.weight"] = r(d, h * hd)
            w[p + "post_attention_layernorm.weight"] = 1 + r(d, std=0.1)
            w[p + "mlp.gate_proj.weight"] = r(f, d)
            w[p + "mlp.up_proj.weight"] = r(f, d)
            w[p + "mlp.down_proj.weight"] = r(d, f)
        w["model.norm.weight"] = 1 + r(d, std=0.1)
        w["lm_head.weight"] = r(c["vocab_size"], d, std=0.5)
    return w


# ------------------------------------------------------------------ forward passes (our reading of the papers)

def layer_norm(x, wt, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * wt + b


def gelu_tanh(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def causal_attention(q, k, v, kv_heads):
    """q (B, H, T, D); k, v (B, Hkv, S, D) holding the cache plus the new keys; query t sits at position S - T + t."""
    heads, t, s, d = q.shape[1], q.shape[2], k.shape[2], q.shape[3]
    rep = heads // kv_heads
    k = k.repeat_interleave(rep, dim=1)
    v = v.repeat_interleave(rep, dim=1)
    scores = q @ k.transpose(-1, -2) / math.sqrt(d)
    allowed = torch.arange(s).view(1, s) <= torch.arange(s - t, s).view(t, 1)
    scores = scores.masked_fill(~allowed, float("-inf"))
    y = scores.softmax(-1) @ v                                  # (B, H, T, D)
    return y.transpose(1, 2).reshape(q.shape[0], t, heads * d)


def gpt2_forward(c, w, ids, start, cache):
    b, t = ids.shape
    d, h = c["n_embd"], c["n_head"]
    hd = d // h
    pos = torch.arange(start, start + t).view(1, t)
    x = w["transformer.wte.weight"][ids] + w["transformer.wpe.weight"][pos]
    for i in range(c["n_layer"]):
        p = f"transformer.h.{i}."
        a = layer_norm(x, w[p + "ln_1.weight"], w[p + "ln_1.bias"], c["layer_norm_epsilon"])
        qkv = a @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]
        q, k, v = (z.view(b, t, h, hd).transpose(1, 2) for z in qkv.split(d, dim=-1))
        if cache is not None:
            k, v = torch.cat([cache[i][0], k], 2), torch.cat([cache[i][1], v], 2)
            cache[i] = (k, v)
        x = x + causal_attention(q, k, v, h) @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"]
        m = layer_norm(x, w[p + "ln_2.weight"], w[p + "ln_2.bias"], c["layer_norm_epsilon"])
        x = x + gelu_tanh(m @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"]) @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"]
    x = layer_norm(x, w["transformer.ln_f.weight"], w["transformer.ln_f.bias"], c["layer_norm_epsilon"])
    return x @ w["transformer.wte.weight"].t()


def rms_norm(x, wt, eps):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * wt


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], -1)


def llama_forward(c, w, ids, start, cache):
    b, t = ids.shape
    d, h, kv = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
    hd = d // h
    inv = 1.0 / (c["rope_theta"] ** (torch.arange(0, hd, 2).float() / hd))
    freqs = torch.arange(start, start + t).float().view(t, 1) * inv.view(1, -1)
    emb = torch.cat([freqs, freqs], -1)
    cos, sin = emb.cos().view(1, 1, t, hd), emb.sin().view(1, 1, t, hd)
    x = w["model.embed_tokens.weight"][ids]
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        a = rms_norm(x, w[p + "input_layernorm.weight"], c["rms_norm_eps"])
        q = (a @ w[p + "self_attn.q_proj.weight"].t()).view(b, t, h, hd).transpose(1, 2)
        k = (a @ w[p + "self_attn.k_proj.weight"].t()).view(b, t, kv, hd).transpose(1, 2)
        v = (a @ w[p + "self_attn.v_proj.weight"].t()).view(b, t, kv, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if cache is not None:
            k, v = torch.cat([cache[i][0], k], 2), torch.cat([cache[i][1], v], 2)
            cache[i] = (k, v)
        x = x + causal_attention(q, k, v, kv) @ w[p + "self_attn.o_proj.weight"].t()
        m = rms_norm(x, w[p + "post_attention_layernorm.weight"], c["rms_norm_eps"])
        gate = m @ w[p + "mlp.gate_proj.weight"].t()
        x = x + (gate * torch.sigmoid(gate) * (m @ w[p + "mlp.up_proj.weight"].t())) @ w[p + "mlp.down_proj.weight"].t()
    x = rms_norm(x, w["model.norm.weight"], c["rms_norm_eps"])
    return x @ w["lm_head.weight"].t()


def greedy(forward, c, w, prompt, new_tokens, layers, kv_heads, head_dim):
    """Greedy decode with a KV cache: prefill the prompt, then one token per step."""
    cache = [(torch.zeros(1, kv_heads, 0, head_dim), torch.zeros(1, kv_heads, 0, head_dim)) for _ in range(layers)]
    ids = torch.tensor([prompt])
    logits = forward(c, w, ids, 0, cache)
    out = []
    for step in range(new_tokens):
        token = int(logits[0, -1].argmax())
        out.append(token)
        logits = forward(c, w, torch.tensor([[token]]), len(prompt) + step, cache)
    return out


# ------------------------------------------------------------------ files


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", choices=["gpt2", "llama"], required=True)
    ap.add_argument("--format", choices=["safetensors", "bin", "sharded"], required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--new-tokens", type=int, default=24)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.set_grad_enabled(False)
    g = torch.Generator().manual_seed(a.seed)
    c = gpt2_config() if a.arch == "gpt2" else llama_config()
    w = random_weights(a.arch, c, g)

    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(c, f, indent=2)
    if a.format == "safetensors":
        save_safetensors(os.path.join(a.out, "model.safetensors"), w)
    elif a.format == "bin":
        torch.save({k: v.clone() for k, v in w.items()}, os.path.join(a.out, "pytorch_model.bin"))
    else:
        names = sorted(w)
        shards = {"model-00001-of-00002.safetensors": names[: len(names) // 2], "model-00002-of-00002.safetensors": names[len(names) // 2:]}
        for file, keys in shards.items():
            save_safetensors(os.path.join(a.out, file), {k: w[k] for k in keys})
        index = {"metadata": {"total_size": sum(v.numel() * 4 for v in w.values())},
                 "weight_map": {k: file for file, keys in shards.items() for k in keys}}
        with open(os.path.join(a.out, "model.safetensors.index.json"), "w") as f:
            json.dump(index, f, indent=2)

    forward = gpt2_forward if a.arch == "gpt2" else llama_forward
    if a.arch == "gpt2":
        layers, kv, hd = c["n_layer"], c["n_head"], c["n_embd"] // c["n_head"]
    else:
        layers, kv, hd = c["num_hidden_layers"], c["num_key_value_heads"], c["hidden_size"] // c["num_attention_heads"]
    ids = torch.randint(0, c["vocab_size"], (2, 9), generator=g)
    logits = forward(c, w, ids, 0, None)
    prompt = [int(x) for x in torch.randint(0, c["vocab_size"], (5,), generator=g)]
    tokens = greedy(forward, c, w, prompt, a.new_tokens, layers, kv, hd)
    reference = {"torch": torch.__version__, "ids": ids.tolist(), "logitsShape": list(logits.shape),
                 "logits": [float(x) for x in logits.reshape(-1)], "prompt": prompt, "greedy": tokens}
    with open(os.path.join(a.out, "reference.json"), "w") as f:
        json.dump(reference, f)


if __name__ == "__main__":
    main()
