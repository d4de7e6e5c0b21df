#!/usr/bin/env python3
"""Writes a tiny GLM-Image AR checkpoint (vision_language_encoder/ layout: config.json with model_type glm_image and a
text_config, model.safetensors with the official tensor names, plus a few vision-tower and VQ tensors that text-to-
image does not use) with random weights, and the logits PyTorch computes for prompts laid out with M-RoPE grid
positions.

The forward pass is this project's reading of GLM-Image's published architecture (transformers' glm_image model
description: four RMSNorms per layer around attention and MLP, q/k/v bias, fused gate_up SwiGLU with the gate first,
partial rotate-half rotary whose frequency chunks take the temporal / height / width position in turn), not the
reference code. torch and numpy only; safetensors written by hand.

usage: glm_image_ar.py --out DIR [--seed N]
"""
import argparse
import json
import math
import os

import torch

from safetensors_io import save_safetensors

H, HEADS, KV, LAYERS, FFN, VOCAB, VISION = 128, 4, 2, 2, 96, 300, 96
SECTION = [2, 3, 3]           # frequencies per axis; head_dim 32 x partial 0.5 = 16 rotary dims = 8 frequencies
THETA, EPS = 10000.0, 1e-5


def config():
    return {"model_type": "glm_image", "architectures": ["GlmImageForConditionalGeneration"],
            "image_token_id": 290, "image_start_token_id": 94, "image_end_token_id": 95, "tie_word_embeddings": False,
            "text_config": {"model_type": "glm_image_text", "vocab_size": VOCAB, "vision_vocab_size": VISION,
                            "hidden_size": H, "intermediate_size": FFN, "num_hidden_layers": LAYERS,
                            "num_attention_heads": HEADS, "num_key_value_heads": KV, "hidden_act": "silu",
                            "max_position_embeddings": 512, "rms_norm_eps": EPS, "attention_bias": True,
                            "attention_dropout": 0.0, "tie_word_embeddings": False, "use_cache": True,
                            "rope_parameters": {"rope_type": "default", "rope_theta": THETA,
                                                "partial_rotary_factor": 0.5, "mrope_section": SECTION}},
            "vision_config": {"depth": 1, "hidden_size": 16, "num_heads": 2, "patch_size": 4},
            "vq_config": {"embed_dim": 8, "num_embeddings": 94, "latent_channels": 16}}


def weights(g):
    def r(*s, std=0.2):
        return (torch.randn(*s, generator=g) * std).contiguous()
    hd = H // HEADS
    w = {"model.language_model.embed_tokens.weight": r(VOCAB, H, std=0.5)}
    for i in range(LAYERS):
        p = f"model.language_model.layers.{i}."
        for n in ["input_layernorm", "post_self_attn_layernorm", "post_attention_layernorm", "post_mlp_layernorm"]:
            w[p + n + ".weight"] = 1 + r(H, std=0.1)
        w[p + "self_attn.q_proj.weight"], w[p + "self_attn.q_proj.bias"] = r(HEADS * hd, H), r(HEADS * hd, std=0.1)
        w[p + "self_attn.k_proj.weight"], w[p + "self_attn.k_proj.bias"] = r(KV * hd, H), r(KV * hd, std=0.1)
        w[p + "self_attn.v_proj.weight"], w[p + "self_attn.v_proj.bias"] = r(KV * hd, H), r(KV * hd, std=0.1)
        w[p + "self_attn.o_proj.weight"] = r(H, HEADS * hd)
        w[p + "mlp.gate_up_proj.weight"] = r(2 * FFN, H)
        w[p + "mlp.down_proj.weight"] = r(H, FFN)
    w["model.language_model.norm.weight"] = 1 + r(H, std=0.1)
    w["lm_head.weight"] = r(VISION, H, std=0.5)
    # Image-to-image parts (not used by text-to-image).
    w["model.visual.patch_embed.proj.weight"] = r(16, 3, 4, 4)
    w["model.vqmodel.quantize.embedding.weight"] = r(94, 8)
    return w


def rms(x, wt):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + EPS) * wt


def forward(w, ids, pos):
    """ids (B, S); pos (3, B, S). Causal attention over the whole sequence."""
    b, s = ids.shape
    hd = H // HEADS
    rot = hd // 2
    inv = 1.0 / (THETA ** (torch.arange(0, rot, 2).float() / rot))              # (rot/2,)
    per_axis = pos.float().unsqueeze(-1) * inv                                     # (3, B, S, rot/2)
    bounds = [0, SECTION[0], SECTION[0] + SECTION[1], sum(SECTION)]
    freqs = torch.cat([per_axis[a, :, :, bounds[a]:bounds[a + 1]] for a in range(3)], -1)
    emb = torch.cat([freqs, freqs], -1)
    cos, sin = emb.cos().unsqueeze(1), emb.sin().unsqueeze(1)                    # (B, 1, S, rot)

    def rope(x):
        xr, xp = x[..., :rot], x[..., rot:]
        half = rot // 2
        rotated = torch.cat([-xr[..., half:], xr[..., :half]], -1)
        return torch.cat([xr * cos + rotated * sin, xp], -1)

    allowed = torch.arange(s).view(1, s) <= torch.arange(s).view(s, 1)
    x = w["model.language_model.embed_tokens.weight"][ids]
    for i in range(LAYERS):
        p = f"model.language_model.layers.{i}."
        a = rms(x, w[p + "input_layernorm.weight"])
        q = (a @ w[p + "self_attn.q_proj.weight"].t() + w[p + "self_attn.q_proj.bias"]).view(b, s, HEADS, hd).transpose(1, 2)
        k = (a @ w[p + "self_attn.k_proj.weight"].t() + w[p + "self_attn.k_proj.bias"]).view(b, s, KV, hd).transpose(1, 2)
        v = (a @ w[p + "self_attn.v_proj.weight"].t() + w[p + "self_attn.v_proj.bias"]).view(b, s, KV, hd).transpose(1, 2)
        q, k = rope(q), rope(k)
        k, v = k.repeat_interleave(HEADS // KV, 1), v.repeat_interleave(HEADS // KV, 1)
        scores = (q @ k.transpose(-1, -2) / math.sqrt(hd)).masked_fill(~allowed, float("-inf"))
        y = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, s, H)
        x = x + rms(y @ w[p + "self_attn.o_proj.weight"].t(), w[p + "post_self_attn_layernorm.weight"])
        m = rms(x, w[p + "post_attention_layernorm.weight"])
        gate, up = (m @ w[p + "mlp.gate_up_proj.weight"].t()).chunk(2, -1)
        x = x + rms((gate * torch.sigmoid(gate) * up) @ w[p + "mlp.down_proj.weight"].t(), w[p + "post_mlp_layernorm.weight"])
    return rms(x, w["model.language_model.norm.weight"]) @ w["lm_head.weight"].t()


def grid_positions(batch, text, gh, gw):
    s = text + gh * gw
    p = torch.zeros(3, s, dtype=torch.long)
    p[:, :text] = torch.arange(text)
    for k in range(gh * gw):
        p[0, text + k], p[1, text + k], p[2, text + k] = text, text + k // gw, text + k % gw
    return p.unsqueeze(1).expand(3, batch, s).contiguous()


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
    ids = torch.randint(0, VISION, (2, 5 + 3 * 4), generator=g)
    pos = grid_positions(2, 5, 3, 4)
    logits = forward(w, ids, pos)
    with open(os.path.join(a.out, "reference.json"), "w") as f:
        json.dump({"torch": torch.__version__, "ids": ids.tolist(), "positions": pos.tolist(),
                   "logitsShape": list(logits.shape), "logits": [float(x) for x in logits.reshape(-1)]}, f)


if __name__ == "__main__":
    main()
