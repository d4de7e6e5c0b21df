#!/usr/bin/env python3
"""Writes a tiny GLM-Image DiT checkpoint (transformer/ layout: diffusers-style config.json and
diffusion_pytorch_model.safetensors with the official tensor names) with random weights, and the velocity PyTorch
computes for seeded inputs.

The forward pass is this project's reading of GLM-Image's published DiT description (diffusers' GlmImageTransformer2DModel
documentation and module structure): 2x2 patches, glyph and prior projectors, sinusoidal time and size/crop conditions,
AdaLN with 12 chunks over one joint glyph+image stream, QK LayerNorm, 2-D rotary on image tokens, shared feed-forward,
final AdaLN (scale then shift). It is not the reference code. torch and numpy only; safetensors written by hand.

usage: glm_image_dit.py --out DIR [--seed N]
"""
import argparse
import json
import math
import os

import torch

from safetensors_io import save_safetensors

P, C, LAYERS, HEADS, HD, TEXT, TIME, COND, BOOK = 2, 4, 2, 2, 16, 24, 16, 8, 50
D = HEADS * HD


def config():
    return {"_class_name": "GlmImageTransformer2DModel", "_diffusers_version": "0.36.0", "patch_size": P,
            "in_channels": C, "out_channels": C, "num_layers": LAYERS, "attention_head_dim": HD,
            "num_attention_heads": HEADS, "text_embed_dim": TEXT, "time_embed_dim": TIME, "condition_dim": COND,
            "prior_vq_quantizer_codebook_size": BOOK}


def weights(g):
    def r(*s, std=0.2):
        return (torch.randn(*s, generator=g) * std).contiguous()
    w = {}

    def lin(name, i, o, std=0.2):
        w[name + ".weight"], w[name + ".bias"] = r(o, i, std=std), r(o, std=0.05)
    lin("image_projector.proj", C * P * P, D)
    lin("glyph_projector.net.0.proj", TEXT, D)
    lin("glyph_projector.net.2", D, D)
    w["prior_token_embedding.weight"] = r(BOOK, D, std=0.5)
    lin("prior_projector.net.0.proj", D, D)
    lin("prior_projector.net.2", D, D)
    lin("time_condition_embed.timestep_embedder.linear_1", TIME, TIME)
    lin("time_condition_embed.timestep_embedder.linear_2", TIME, TIME)
    lin("time_condition_embed.condition_embedder.linear_1", 4 * COND, TIME)
    lin("time_condition_embed.condition_embedder.linear_2", TIME, TIME)
    for i in range(LAYERS):
        p = f"transformer_blocks.{i}."
        lin(p + "norm1.linear", TIME, 12 * D, std=0.1)
        for n in ["to_q", "to_k", "to_v", "to_out.0"]:
            lin(p + "attn1." + n, D, D)
        lin(p + "ff.net.0.proj", D, 4 * D)
        lin(p + "ff.net.2", 4 * D, D)
    lin("norm_out.linear", TIME, 2 * D, std=0.1)
    lin("proj_out", D, C * P * P)
    return w


def linear(w, name, x):
    return x @ w[name + ".weight"].t() + w[name + ".bias"]


def ln(x, eps=1e-5):
    mu = x.mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(((x - mu) ** 2).mean(-1, keepdim=True) + eps)


def gelu(x):
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def gelu_tanh(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def silu(x):
    return x * torch.sigmoid(x)


def sinusoid(t, dim):
    half = dim // 2
    f = torch.exp(-math.log(10000.0) * torch.arange(half).float() / half)
    a = t.float().unsqueeze(-1) * f
    return torch.cat([a.cos(), a.sin()], -1)


def rope_tables(hp, wp):
    axis = HD // 2
    f = 10000.0 ** (-torch.arange(0, axis, 2).float() / axis)
    rows = torch.arange(hp).float().unsqueeze(-1) * f
    cols = torch.arange(wp).float().unsqueeze(-1) * f
    phi = torch.cat([rows.unsqueeze(1).expand(hp, wp, -1), cols.unsqueeze(0).expand(hp, wp, -1)], -1).reshape(hp * wp, axis)
    emb = torch.cat([phi, phi], -1)
    return emb.cos(), emb.sin()


def forward(w, lat, glyph, prior_ids, drop, t, size, crop):
    b, _, h, wd = lat.shape
    hp, wp = h // P, wd // P
    n = hp * wp
    x = lat.view(b, C, hp, P, wp, P).permute(0, 2, 4, 1, 3, 5).reshape(b, n, C * P * P)
    x = linear(w, "image_projector.proj", x)
    e = w["prior_token_embedding.weight"][prior_ids].masked_fill(drop.unsqueeze(-1), 0.0)
    x = x + linear(w, "prior_projector.net.2", silu(linear(w, "prior_projector.net.0.proj", e)))
    txt = linear(w, "glyph_projector.net.2", gelu(linear(w, "glyph_projector.net.0.proj", glyph)))
    lg = txt.shape[1]
    te = linear(w, "time_condition_embed.timestep_embedder.linear_2", silu(linear(w, "time_condition_embed.timestep_embedder.linear_1", sinusoid(t, TIME))))
    cond = torch.cat([sinusoid(crop[:, 0], COND), sinusoid(crop[:, 1], COND), sinusoid(size[:, 0], COND), sinusoid(size[:, 1], COND)], -1)
    ce = linear(w, "time_condition_embed.condition_embedder.linear_2", silu(linear(w, "time_condition_embed.condition_embedder.linear_1", cond)))
    temb = silu(te + ce)
    cos, sin = rope_tables(hp, wp)

    def rot(v):  # v (B, H, n, HD), rotate-half over the whole head
        half = HD // 2
        return v * cos + torch.cat([-v[..., half:], v[..., :half]], -1) * sin

    for i in range(LAYERS):
        p = f"transformer_blocks.{i}."
        m = linear(w, p + "norm1.linear", temb).unsqueeze(1).chunk(12, -1)
        xn = ln(x) * (1 + m[2]) + m[0]
        tn = ln(txt) * (1 + m[3]) + m[1]
        joint = torch.cat([tn, xn], 1)
        s = joint.shape[1]

        def heads(name, norm):
            v = linear(w, p + "attn1." + name, joint).view(b, s, HEADS, HD)
            return (ln(v) if norm else v).transpose(1, 2)
        q, k, v = heads("to_q", True), heads("to_k", True), heads("to_v", False)
        q = torch.cat([q[:, :, :lg], rot(q[:, :, lg:])], 2)
        k = torch.cat([k[:, :, :lg], rot(k[:, :, lg:])], 2)
        y = ((q @ k.transpose(-1, -2)) / math.sqrt(HD)).softmax(-1) @ v
        y = linear(w, p + "attn1.to_out.0", y.transpose(1, 2).reshape(b, s, D))
        txt = txt + m[5] * y[:, :lg]
        x = x + m[4] * y[:, lg:]

        def ff(z):
            return linear(w, p + "ff.net.2", gelu_tanh(linear(w, p + "ff.net.0.proj", z)))
        x = x + m[10] * ff(ln(x) * (1 + m[8]) + m[6])
        txt = txt + m[11] * ff(ln(txt) * (1 + m[9]) + m[7])
    scale, shift = linear(w, "norm_out.linear", temb).unsqueeze(1).chunk(2, -1)
    out = linear(w, "proj_out", ln(x) * (1 + scale) + shift)
    return out.view(b, hp, wp, C, P, P).permute(0, 3, 1, 4, 2, 5).reshape(b, C, h, wd)


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
    save_safetensors(os.path.join(a.out, "diffusion_pytorch_model.safetensors"), w)
    b, h, wd, lg = 2, 8, 12, 5
    n = (h // P) * (wd // P)
    lat = torch.randn(b, C, h, wd, generator=g)
    glyph = torch.randn(b, lg, TEXT, generator=g)
    prior = torch.randint(0, BOOK, (b, n), generator=g)
    drop = torch.zeros(b, n, dtype=torch.bool)
    drop[1] = True
    t = torch.tensor([999.0, 412.5])
    size = torch.tensor([[64.0, 96.0], [64.0, 96.0]])
    crop = torch.zeros(b, 2)
    v = forward(w, lat, glyph, prior, drop, t, size, crop)
    ref = {"torch": torch.__version__, "shape": list(v.shape), "velocity": [float(x) for x in v.reshape(-1)],
           "latents": [float(x) for x in lat.reshape(-1)], "glyph": [float(x) for x in glyph.reshape(-1)],
           "prior": prior.reshape(-1).tolist(), "drop": drop.reshape(-1).tolist(), "timestep": t.tolist(),
           "targetSize": size.reshape(-1).tolist(), "crop": crop.reshape(-1).tolist(), "dims": [b, C, h, wd, lg, TEXT, n]}
    with open(os.path.join(a.out, "reference.json"), "w") as f:
        json.dump(ref, f)


if __name__ == "__main__":
    main()
