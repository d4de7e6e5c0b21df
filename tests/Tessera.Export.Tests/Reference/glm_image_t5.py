#!/usr/bin/env python3
"""Writes a tiny GLM-Image glyph encoder checkpoint (text_encoder/ layout: a T5 config.json and model.safetensors
with T5EncoderModel's tensor names; encoder.embed_tokens.weight left out, as tied copies are) with random weights,
and the last hidden state PyTorch computes for a batch of 2 whose second row is right-padded.

The forward pass is this project's reading of the published T5 encoder description (as ByT5 uses it): RMS norm
without mean or bias, unscaled attention scores plus block 0's bidirectional relative-position bias (shared by all
layers) plus an additive padding mask, gated tanh-GELU feed-forward, pre-norm residuals, a final RMS norm. It is not
the reference code. torch only; safetensors written by hand.

usage: glm_image_t5.py --out DIR [--seed N]
"""
import argparse
import json
import math
import os

import torch

from safetensors_io import save_safetensors

D, DKV, HEADS, DFF, LAYERS, VOCAB, EPS = 32, 8, 4, 48, 2, 384, 1e-6
# Few buckets and a short maximum distance, so that a length of 40 reaches the saturated buckets too.
BUCKETS, MAX_DISTANCE = 16, 24
INNER = HEADS * DKV


def config():
    return {"architectures": ["T5EncoderModel"], "model_type": "t5", "d_model": D, "d_kv": DKV, "d_ff": DFF,
            "num_heads": HEADS, "num_layers": LAYERS, "num_decoder_layers": LAYERS, "vocab_size": VOCAB,
            "feed_forward_proj": "gated-gelu", "dense_act_fn": "gelu_new", "is_gated_act": True,
            "layer_norm_epsilon": EPS, "relative_attention_num_buckets": BUCKETS,
            "relative_attention_max_distance": MAX_DISTANCE, "dropout_rate": 0.1, "initializer_factor": 1.0,
            "is_encoder_decoder": True, "use_cache": False, "pad_token_id": 0, "eos_token_id": 1,
            "decoder_start_token_id": 0, "tie_word_embeddings": False, "torch_dtype": "float32",
            "transformers_version": "4.57.0"}


def weights(g):
    def r(*s, std=0.3):
        return (torch.randn(*s, generator=g) * std).contiguous()
    w = {"shared.weight": r(VOCAB, D, std=1.0)}
    for i in range(LAYERS):
        p = f"encoder.block.{i}.layer."
        for n in "qkv":
            w[p + f"0.SelfAttention.{n}.weight"] = r(INNER, D)
        w[p + "0.SelfAttention.o.weight"] = r(D, INNER)
        w[p + "0.layer_norm.weight"] = 1 + r(D, std=0.1)
        w[p + "1.DenseReluDense.wi_0.weight"] = r(DFF, D)
        w[p + "1.DenseReluDense.wi_1.weight"] = r(DFF, D)
        w[p + "1.DenseReluDense.wo.weight"] = r(D, DFF)
        w[p + "1.layer_norm.weight"] = 1 + r(D, std=0.1)
    w["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"] = r(BUCKETS, HEADS, std=1.0)
    w["encoder.final_layer_norm.weight"] = 1 + r(D, std=0.1)
    return w


def rms(x, weight):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * weight


def gelu_tanh(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def bucket(rel, buckets, max_distance):
    """Bidirectional T5 bucket of rel = key - query: half the buckets per direction (positive ones offset by
    that half); distances below a quarter of the buckets are exact, larger ones logarithmic up to max_distance,
    then the last bucket of the direction. float32 arithmetic, truncated, as in the published formula."""
    half = buckets // 2
    exact = half // 2
    out = (rel > 0).long() * half
    n = rel.abs()
    safe = torch.clamp(n, min=exact).float()
    log_part = (torch.log(safe / exact) / math.log(max_distance / exact) * (half - exact)).long()
    large = torch.clamp(exact + log_part, max=half - 1)
    return out + torch.where(n < exact, n, large)


def forward(w, ids, mask):
    b, length = ids.shape
    x = w["shared.weight"][ids]
    pos = torch.arange(length)
    rel = pos[None, :] - pos[:, None]
    bias = w["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"][bucket(rel, BUCKETS, MAX_DISTANCE)]
    bias = bias.permute(2, 0, 1).unsqueeze(0)
    bias = bias + (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
    for i in range(LAYERS):
        p = f"encoder.block.{i}.layer."
        h = rms(x, w[p + "0.layer_norm.weight"])

        def heads(n):
            return (h @ w[p + f"0.SelfAttention.{n}.weight"].t()).view(b, length, HEADS, DKV).transpose(1, 2)
        scores = heads("q") @ heads("k").transpose(-1, -2) + bias
        y = (scores.softmax(-1) @ heads("v")).transpose(1, 2).reshape(b, length, INNER)
        x = x + y @ w[p + "0.SelfAttention.o.weight"].t()
        h = rms(x, w[p + "1.layer_norm.weight"])
        gate = gelu_tanh(h @ w[p + "1.DenseReluDense.wi_0.weight"].t())
        x = x + (gate * (h @ w[p + "1.DenseReluDense.wi_1.weight"].t())) @ w[p + "1.DenseReluDense.wo.weight"].t()
    return rms(x, w["encoder.final_layer_norm.weight"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.set_grad_enabled(False)
    g = torch.Generator().manual_seed(a.seed)
    w = weights(g)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config(), f, indent=2)
    save_safetensors(os.path.join(a.out, "model.safetensors"), w)
    b, length, kept = 2, 40, 23
    ids = torch.randint(3, VOCAB, (b, length), generator=g)
    ids[:, 0] = 0                      # GLM-Image's leading pad (an even number of glyph texts): masked in
    ids[:, -1] = 1
    ids[1, kept - 1] = 1               # each row ends with EOS
    ids[1, kept:] = 0
    mask = torch.ones(b, length, dtype=torch.long)
    mask[1, kept:] = 0
    out = forward(w, ids, mask)
    # Buckets at ByT5's own settings (32 buckets, distance 128) over -300..300: the float32 boundaries at 16, 32, 64.
    rel = torch.arange(-300, 301)
    ref = {"torch": torch.__version__, "shape": list(out.shape), "last_hidden_state": [float(x) for x in out.reshape(-1)],
           "input_ids": ids.reshape(-1).tolist(), "attention_mask": mask.reshape(-1).tolist(), "dims": [b, length, D],
           "byt5_buckets": bucket(rel, 32, 128).tolist()}
    with open(os.path.join(a.out, "reference.json"), "w") as f:
        json.dump(ref, f)


if __name__ == "__main__":
    main()
