#!/usr/bin/env python3
"""Load the weights samples/QuickStart saved into PyTorch's nn.Sequential, strictly, and print one forward pass.

    /usr/bin/python3 samples/load_in_torch.py mlp.safetensors    # Debian's python3, where python3-torch lives

Reads the safetensors container itself (8-byte little-endian header length, a JSON header, raw little-endian
tensors), so it needs only torch (Debian: python3-torch), not the safetensors package.
The module is the MLP of docs/MODELS.md; load_state_dict(strict=True) fails on any missing, extra or misshapen tensor.
"""
import json
import struct
import sys

import torch

DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64, "F16": torch.float16, "BF16": torch.bfloat16}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    base = 8 + n
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        raw = bytearray(data[base + begin:base + end])
        flat = torch.frombuffer(raw, dtype=DTYPES[entry["dtype"]]) if raw else torch.empty(0, dtype=DTYPES[entry["dtype"]])
        tensors[name] = flat.reshape(entry["shape"]).clone()
    return tensors


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "mlp.safetensors"
    state = read_safetensors(path)
    width = state["1.weight"].shape[0]
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, width), torch.nn.Tanh(),
                                torch.nn.Linear(width, width), torch.nn.Tanh(), torch.nn.Linear(width, 10))
    model.load_state_dict(state, strict=True)
    x = torch.linspace(-1, 1, 784).reshape(1, 784)
    print(f"{path}: {sum(p.numel() for p in model.parameters()):,} parameters loaded strictly; logits of a test input: {[round(v, 4) for v in model(x).detach()[0].tolist()]}")


if __name__ == "__main__":
    main()
