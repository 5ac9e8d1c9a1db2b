#!/usr/bin/env python3
"""Check an eigenvector written by `lab spectrum --vectors DIR` in PyTorch: Hv by double backward against λv.

    /usr/bin/python3 samples/check_eigenvector.py WEIGHTS BATCH DIR/eigenvector_0.safetensors [--float32]

Builds the model of docs/MODELS.md the weights file names (perf/torch/models.py), loads the weights strictly, takes
the loss and mode (train: batch statistics; eval: running ones) from the eigenvector's metadata, computes H·v on
the batch by double backward (in float64 unless --float32) and prints the relative residual ||Hv - lambda v|| /
(|lambda| ||v||) and the Rayleigh quotient v'Hv / v'v beside the engine's lambda. Exit 1 when the residual exceeds 1e-3.
"""
import argparse
import json
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "perf", "torch"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402
from load_in_torch import read_safetensors  # noqa: E402


def metadata(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n)).get("__metadata__", {})


def build(kind, state, meta):
    if kind == "mlp":
        width = state["1.weight"].shape[0]
        return models.mlp(width=width, activation=meta.get("activation", "tanh"))
    if kind == "resnet20":
        return models.ResNet20(channels=state["conv1.weight"].shape[1], classes=state["fc.weight"].shape[0])
    if kind == "gpt":
        layers = len({k.split(".")[2] for k in state if k.startswith("transformer.h.")})
        vocabulary, width = state["transformer.wte.weight"].shape
        return models.Gpt(vocabulary=vocabulary, context=state["transformer.wpe.weight"].shape[0], layers=layers,
                          heads=int(meta.get("n_head", 6)), width=width)
    raise SystemExit(f"error: unknown model kind {kind!r}; expected mlp, resnet20 or gpt")


def loss_of(name, out, y):
    if name == "ce":
        return models.cross_entropy(out, y)
    if name == "mse":  # 0.5 * sum_c (out_c - onehot_c)^2, averaged over the batch (docs/MODELS.md)
        return 0.5 * ((out - torch.nn.functional.one_hot(y, out.shape[-1]).to(out.dtype)) ** 2).sum(-1).mean()
    raise SystemExit(f"error: unknown loss {name!r}; expected ce or mse")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("weights")
    p.add_argument("batch")
    p.add_argument("eigenvector")
    p.add_argument("--float32", action="store_true", help="compute Hv in float32 (default float64)")
    a = p.parse_args()
    for path in (a.weights, a.batch, a.eigenvector):
        if not os.path.isfile(path):
            print(f"error: {path}: no such file", file=sys.stderr)
            return 1
    vmeta, wmeta = metadata(a.eigenvector), metadata(a.weights)
    kind = vmeta.get("model") or wmeta.get("model")
    state = read_safetensors(a.weights)
    model = build(kind, state, {**wmeta, **vmeta})
    model.load_state_dict({k: v for k, v in state.items() if k != "lm_head.weight"}, strict=True)
    dtype = torch.float32 if a.float32 else torch.float64
    model = model.to(dtype)
    model.train(vmeta.get("mode") == "train")
    batch = read_safetensors(a.batch)
    x, y = batch["inputs"], batch["targets"]
    if x.is_floating_point():
        x = x.to(dtype)
    vector = read_safetensors(a.eigenvector)
    named = dict(model.named_parameters())
    missing = sorted(set(named) - set(vector))
    if missing:
        print(f"error: {a.eigenvector} lacks {', '.join(missing)}", file=sys.stderr)
        return 1
    params = list(named.values())
    v = [vector[n].to(dtype) for n in named]
    lam = float(vmeta["eigenvalue"])
    loss = loss_of(vmeta.get("loss", "ce"), model(x), y)
    g = torch.autograd.grad(loss, params, create_graph=True)
    hv = torch.autograd.grad(g, params, grad_outputs=v)
    vv = sum((t * t).sum() for t in v).item()
    residual = sum(((h - lam * t) ** 2).sum() for h, t in zip(hv, v)).item() ** 0.5 / (abs(lam) * vv ** 0.5)
    rayleigh = sum((h * t).sum() for h, t in zip(hv, v)).item() / vv
    print(f"{kind}, {sum(t.numel() for t in v):,} parameters, loss {vmeta.get('loss')} ({vmeta.get('mode')} mode), {str(dtype).split('.')[-1]}: "
          f"engine lambda {lam:.6g}, PyTorch v'Hv/v'v {rayleigh:.6g}, relative residual ||Hv - lambda v||/(|lambda| ||v||) {residual:.2e}")
    return 0 if residual <= 1e-3 else 1


if __name__ == "__main__":
    sys.exit(main())
