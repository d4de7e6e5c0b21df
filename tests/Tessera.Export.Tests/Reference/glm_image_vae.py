#!/usr/bin/env python3
"""Writes a tiny GLM-Image VAE checkpoint (vae/ layout: diffusers-style config.json with latents_mean/std and
diffusion_pytorch_model.safetensors with AutoencoderKL's tensor names, including encoder tensors that decoding does
not use) with random weights, and the image PyTorch decodes from seeded latents.

The decode path is this project's reading of diffusers' AutoencoderKL description (per-channel de-normalisation,
post_quant_conv, conv_in, mid block of two ResNet blocks around single-head attention, up blocks of ResNet blocks with
nearest x2 + conv upsamplers, GroupNorm + SiLU + conv_out; GroupNorm eps 1e-6). Not the reference code.

usage: glm_image_vae.py --out DIR [--seed N]
"""
import argparse
import json
import math
import os

import torch

from safetensors_io import save_safetensors
import torch.nn.functional as F

LAT, BLOCKS, LAYERS, GROUPS = 4, [8, 16], 1, 4


def config(mean, std):
    return {"_class_name": "AutoencoderKL", "_diffusers_version": "0.36.0", "in_channels": 3, "out_channels": 3,
            "down_block_types": ["DownEncoderBlock2D"] * len(BLOCKS), "up_block_types": ["UpDecoderBlock2D"] * len(BLOCKS),
            "block_out_channels": BLOCKS, "layers_per_block": LAYERS, "act_fn": "silu", "latent_channels": LAT,
            "norm_num_groups": GROUPS, "sample_size": 32, "scaling_factor": 1.0, "shift_factor": None,
            "latents_mean": mean, "latents_std": std, "force_upcast": True, "use_quant_conv": True,
            "use_post_quant_conv": True, "mid_block_add_attention": True}


def weights(g):
    w = {}

    def r(*s, std=0.2):
        return (torch.randn(*s, generator=g) * std).contiguous()

    def conv(name, i, o, k):
        w[name + ".weight"], w[name + ".bias"] = r(o, i, k, k, std=1.0 / math.sqrt(i * k * k)), r(o, std=0.05)

    def norm(name, c):
        w[name + ".weight"], w[name + ".bias"] = 1 + r(c, std=0.1), r(c, std=0.1)

    def resnet(name, i, o):
        norm(name + ".norm1", i)
        conv(name + ".conv1", i, o, 3)
        norm(name + ".norm2", o)
        conv(name + ".conv2", o, o, 3)
        if i != o:
            conv(name + ".conv_shortcut", i, o, 1)

    rev = BLOCKS[::-1]
    conv("post_quant_conv", LAT, LAT, 1)
    conv("decoder.conv_in", LAT, rev[0], 3)
    resnet("decoder.mid_block.resnets.0", rev[0], rev[0])
    resnet("decoder.mid_block.resnets.1", rev[0], rev[0])
    a = "decoder.mid_block.attentions.0"
    norm(a + ".group_norm", rev[0])
    for n in ["to_q", "to_k", "to_v", "to_out.0"]:
        w[f"{a}.{n}.weight"], w[f"{a}.{n}.bias"] = r(rev[0], rev[0]), r(rev[0], std=0.05)
    prev = rev[0]
    for b, ch in enumerate(rev):
        for j in range(LAYERS + 1):
            resnet(f"decoder.up_blocks.{b}.resnets.{j}", prev if j == 0 else ch, ch)
        prev = ch
        if b < len(rev) - 1:
            conv(f"decoder.up_blocks.{b}.upsamplers.0.conv", ch, ch, 3)
    norm("decoder.conv_norm_out", BLOCKS[0])
    conv("decoder.conv_out", BLOCKS[0], 3, 3)
    # Encoder side (image-to-image only): present in the file, not used for decoding.
    conv("encoder.conv_in", 3, BLOCKS[0], 3)
    conv("quant_conv", 2 * LAT, 2 * LAT, 1)
    return w


def gn(x, w, b):
    return F.group_norm(x, GROUPS, w, b, 1e-6)


def resnet(w, name, x):
    h = F.conv2d(F.silu(gn(x, w[name + ".norm1.weight"], w[name + ".norm1.bias"])), w[name + ".conv1.weight"], w[name + ".conv1.bias"], padding=1)
    h = F.conv2d(F.silu(gn(h, w[name + ".norm2.weight"], w[name + ".norm2.bias"])), w[name + ".conv2.weight"], w[name + ".conv2.bias"], padding=1)
    sc = F.conv2d(x, w[name + ".conv_shortcut.weight"], w[name + ".conv_shortcut.bias"]) if name + ".conv_shortcut.weight" in w else x
    return sc + h


def attention(w, name, x):
    b, c, hh, ww = x.shape
    t = gn(x, w[name + ".group_norm.weight"], w[name + ".group_norm.bias"]).view(b, c, hh * ww).transpose(1, 2)
    q, k, v = (t @ w[f"{name}.{n}.weight"].t() + w[f"{name}.{n}.bias"] for n in ["to_q", "to_k", "to_v"])
    y = ((q @ k.transpose(1, 2)) / math.sqrt(c)).softmax(-1) @ v
    y = y @ w[name + ".to_out.0.weight"].t() + w[name + ".to_out.0.bias"]
    return y.transpose(1, 2).reshape(b, c, hh, ww) + x


def decode(w, mean, std, z):
    z = z * torch.tensor(std).view(1, -1, 1, 1) + torch.tensor(mean).view(1, -1, 1, 1)
    z = F.conv2d(z, w["post_quant_conv.weight"], w["post_quant_conv.bias"])
    x = F.conv2d(z, w["decoder.conv_in.weight"], w["decoder.conv_in.bias"], padding=1)
    x = resnet(w, "decoder.mid_block.resnets.0", x)
    x = attention(w, "decoder.mid_block.attentions.0", x)
    x = resnet(w, "decoder.mid_block.resnets.1", x)
    for b in range(len(BLOCKS)):
        for j in range(LAYERS + 1):
            x = resnet(w, f"decoder.up_blocks.{b}.resnets.{j}", x)
        if b < len(BLOCKS) - 1:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = F.conv2d(x, w[f"decoder.up_blocks.{b}.upsamplers.0.conv.weight"], w[f"decoder.up_blocks.{b}.upsamplers.0.conv.bias"], padding=1)
    x = F.silu(gn(x, w["decoder.conv_norm_out.weight"], w["decoder.conv_norm_out.bias"]))
    return F.conv2d(x, w["decoder.conv_out.weight"], w["decoder.conv_out.bias"], padding=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.set_grad_enabled(False)
    g = torch.Generator().manual_seed(a.seed)
    w = weights(g)
    mean = [round(float(x), 4) for x in torch.randn(LAT, generator=g) * 0.3]
    std = [round(float(x), 4) for x in torch.rand(LAT, generator=g) + 0.5]
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config(mean, std), f, indent=2)
    save_safetensors(os.path.join(a.out, "diffusion_pytorch_model.safetensors"), w)
    z = torch.randn(2, LAT, 3, 5, generator=g)
    img = decode(w, mean, std, z)
    with open(os.path.join(a.out, "reference.json"), "w") as f:
        json.dump({"torch": torch.__version__, "latents": [float(x) for x in z.reshape(-1)], "latentShape": list(z.shape),
                   "image": [float(x) for x in img.reshape(-1)], "imageShape": list(img.shape)}, f)


if __name__ == "__main__":
    main()
